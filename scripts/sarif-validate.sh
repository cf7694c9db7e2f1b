#!/usr/bin/env bash
# Checks `compile --format sarif` with Microsoft's SARIF validator (`sarif-multitool validate`, the
# checks code-scanning services apply): the sample spec (specs/), the WSO2 export fixture and a
# spec with errors in a folder whose name has a space, each compiled with relative and with
# absolute paths. Fails on any validator error or warning.
# Usage: scripts/sarif-validate.sh   (needs the validator in target/ci/sarif: scripts/setup-test-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PACKAGE=$ROOT/target/ci/sarif/node_modules/@microsoft/sarif-multitool
[ -d "$PACKAGE" ] || { echo "sarif-validate: $PACKAGE missing; run scripts/setup-test-deps.sh" >&2; exit 1; }
# The package's own launcher runs the tool through a shell, which splits `--level "Error;Warning"`
# at the `;`: call the platform's self-contained executable it names instead.
VALIDATOR=$(node -p "require('$PACKAGE')")
[ -x "$VALIDATOR" ] || chmod u+x "$VALIDATOR"
cargo build --release -q -p portico-compiler --bin compile
COMPILE=$ROOT/target/release/compile
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# A spec with an error, a warning and an info, so that the report has rules, results and locations.
mkdir -p "$WORK/my specs"
cat > "$WORK/my specs/broken api.yaml" <<'YAML'
asyncapi: 3.0.0
info: {title: Broken, version: 1.0.0}
x-gateway: {context: /broken, endpoints: {production: 'echo:'}}
channels:
  room: {address: '/rooms/{roomId}/'}
operations:
  join: {action: send, channel: {$ref: '#/channels/rom'}}
YAML

failed=0
# $1: label, $2: folder to run in, $3...: compile arguments
check() {
  local label=$1 dir=$2
  shift 2
  local log="$WORK/$label.sarif" out="$WORK/$label.validation.sarif"
  (cd "$dir" && "$COMPILE" --format sarif "$@" >"$log" 2>/dev/null) || true
  "$VALIDATOR" validate "$log" --output "$out" --log ForceOverwrite --level "Error;Warning" --quiet >/dev/null 2>&1 || true
  [ -s "$out" ] || { echo "sarif-validate: $label: the validator wrote no report" >&2; failed=1; return; }
  python3 - "$label" "$log" "$out" <<'PY' || failed=1
import json, sys
label, log_path, out_path = sys.argv[1:]
results = json.load(open(out_path))["runs"][0].get("results", [])
counts = {level: sum(1 for r in results if r.get("level", "warning") == level) for level in ("error", "warning")}
found = len(json.load(open(log_path))["runs"][0]["results"])
print(f"{label}: {found} results; validator: {counts['error']} errors, {counts['warning']} warnings")
for r in results:
    print(f"  {r.get('level', 'warning')} {r['ruleId']}: {r['message'].get('text') or r['message'].get('arguments')}")
sys.exit(1 if counts["error"] or counts["warning"] else 0)
PY
}

check specs-relative "$ROOT" specs/
check specs-absolute "$ROOT" "$ROOT/specs/"
check wso2-relative "$ROOT" tests/fixtures/wso2/ChatAPI-1.0.0
check wso2-absolute "$ROOT" "$ROOT/tests/fixtures/wso2/ChatAPI-1.0.0"
check broken-relative "$WORK" "my specs/"
check broken-absolute "$WORK" "$WORK/my specs/"

if [ "$failed" != 0 ]; then
  echo "sarif-validate: FAILED" >&2
  exit 1
fi
echo "sarif-validate: all clean"

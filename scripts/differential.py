#!/usr/bin/env python3
"""Differential test of `compile --lint` against the official AsyncAPI parser (`@asyncapi/parser`).

Starts from small valid documents (2.4, 2.6, 3.0, 3.1), applies one mutation at a time (each a
class of mistake: a server named instead of referenced, a duplicate id, a wrong example, ...),
asks both tools whether each result is valid, and prints an agreement table.

    scripts/differential.py                # generate, run both tools, print the table
    scripts/differential.py --record       # also rewrite compiler/tests/differential/
    scripts/differential.py --no-oracle    # only generate the documents (no Node.js needed)

The official parser runs through a small Node.js program written to a temporary folder; it needs
`npm install @asyncapi/parser@3.6.6` somewhere on NODE_PATH (or `--parser-dir DIR` holding
`node_modules`). `--record` writes the documents and `verdicts.tsv` (the official verdict, and
Portico's only where the difference is deliberate and documented in docs/diagnostics.md), which
`compiler/tests/differential.rs` checks without Node.js.
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD_DIR = os.path.join(ROOT, "compiler", "tests", "differential")

# Differences kept on purpose: mutation id -> (Portico's verdict, why). Each is listed in
# docs/diagnostics.md.
DIFFERENCES = {
    # Accepted with a warning.
    "v3-op-message-into-components": (
        "valid",
        "the message is the channel's own definition, referenced around the channel: a warning",
    ),
    "v2-security-scope-undeclared": (
        "valid",
        "a scope the scheme's flows do not declare: a warning (the requirement names a real scheme)",
    ),
    "v2-parameter-unused": ("valid", "an unused 2.x parameter is a warning (TCK: valid)"),
    "v2-server-variable-unused": ("valid", "an unused server variable is a warning (TCK: valid)"),
    # Refused on purpose.
    "v2-server-user-info": ("invalid", "credentials in a server URL are refused"),
    "v3-server-user-info": ("invalid", "credentials in a server URL are refused"),
    "v3-reply-message-other-channel": (
        "invalid",
        "a reply's message must be its channel's; the official parser does not check replies",
    ),
    "v2-security-scopes-non-oauth": ("invalid", "scopes on a scheme type without scopes"),
    "v2-parameter-undeclared": ("invalid", "a parameter used but not declared cannot be routed"),
    "v3-parameter-undeclared": ("invalid", "a parameter used but not declared cannot be routed"),
    "v2-server-variable-undeclared": (
        "invalid",
        "a server variable used but not declared has no value to build the URL with",
    ),
    "v3-server-variable-undeclared": (
        "invalid",
        "a server variable used but not declared has no value to build the URL with",
    ),
    "v3-channel-query": ("invalid", "a query or fragment in an address cannot be routed"),
    # Bindings: the official parser checks none in 2.x.
    **{
        f"v2-binding-{name}": ("invalid", "2.x bindings are checked against their binding schemas")
        for name in (
            "ws-method-invalid",
            "ws-query-invalid",
            "ws-headers-invalid",
            "ws-version-invalid",
            "ws-unknown-field",
            "kafka-invalid",
            "mqtt-message-invalid",
            "amqp-message-invalid",
        )
    },
    "v3-binding-ws-version-unknown": (
        "valid",
        "an unknown bindingVersion is a warning and the binding is not checked",
    ),
    # What the specification and the TCK forbid: errors under --lint, warnings for the gateway.
    "v2-discriminator-not-required": ("invalid", "spec MUST and TCK; a warning for the gateway"),
    "v3-discriminator-not-required": ("invalid", "spec MUST and TCK; a warning for the gateway"),
    "v2-server-key-invalid": ("invalid", "spec pattern and TCK; a warning for the gateway"),
    "v3-server-key-invalid": ("invalid", "spec pattern and TCK; a warning for the gateway"),
    "v2-component-key-invalid": ("invalid", "spec pattern and TCK; a warning for the gateway"),
    "v2-server-variable-default-not-in-enum": (
        "invalid",
        "TCK: invalid; a warning for the gateway",
    ),
    "v3-component-key-invalid": ("invalid", "spec pattern and TCK; a warning for the gateway"),
}


def seed_v2(version):
    doc = {
        "asyncapi": version,
        "info": {"title": "Chat", "version": "1.0.0", "description": "A chat."},
        "servers": {
            "production": {
                "url": "ws://{host}:9000",
                "protocol": "ws",
                "variables": {"host": {"default": "localhost"}},
            }
        },
        "channels": {
            "/rooms/{roomId}": {
                "servers": ["production"],
                "parameters": {"roomId": {"schema": {"type": "string"}}},
                "publish": {
                    "operationId": "sendChat",
                    "message": {"$ref": "#/components/messages/chat"},
                },
                "subscribe": {
                    "operationId": "receiveChat",
                    "message": {"$ref": "#/components/messages/notice"},
                },
            }
        },
        "components": {
            "messages": {
                "chat": {
                    "messageId": "chat",
                    "payload": {"$ref": "#/components/schemas/chat"},
                    "examples": [{"payload": {"kind": "text", "text": "hi"}}],
                },
                "notice": {"messageId": "notice", "payload": {"type": "string"}},
            },
            "schemas": {
                "chat": {
                    "type": "object",
                    "properties": {"kind": {"type": "string"}, "text": {"type": "string"}},
                    "required": ["kind"],
                }
            },
            "securitySchemes": {
                "key": {"type": "httpApiKey", "in": "query", "name": "token"},
                "oauth": {
                    "type": "oauth2",
                    "flows": {
                        "implicit": {
                            "authorizationUrl": "https://example.com/auth",
                            "scopes": {"chat:write": "Write."},
                        }
                    },
                },
            },
            "operationTraits": {"tagged": {"tags": [{"name": "chat"}]}},
        },
    }
    if version < "2.2.0":
        del doc["channels"]["/rooms/{roomId}"]["servers"]
    return doc


def seed_v3(version):
    return {
        "asyncapi": version,
        "info": {"title": "Chat", "version": "1.0.0", "description": "A chat."},
        "servers": {
            "production": {
                "host": "{host}:9000",
                "protocol": "ws",
                "variables": {"host": {"default": "localhost"}},
            }
        },
        "channels": {
            "room": {
                "address": "/rooms/{roomId}",
                "servers": [{"$ref": "#/servers/production"}],
                "parameters": {"roomId": {"description": "The room."}},
                "messages": {
                    "chat": {"$ref": "#/components/messages/chat"},
                    "notice": {"payload": {"type": "string"}},
                },
            },
            "lobby": {
                "address": "/lobby",
                "messages": {"hello": {"payload": {"type": "string"}}},
            },
        },
        "operations": {
            "sendChat": {
                "action": "receive",
                "channel": {"$ref": "#/channels/room"},
                "messages": [{"$ref": "#/channels/room/messages/chat"}],
                "reply": {
                    "channel": {"$ref": "#/channels/room"},
                    "messages": [{"$ref": "#/channels/room/messages/notice"}],
                },
            },
            "greet": {
                "action": "send",
                "channel": {"$ref": "#/channels/lobby"},
                "messages": [{"$ref": "#/channels/lobby/messages/hello"}],
            },
        },
        "components": {
            "messages": {
                "chat": {
                    "payload": {"$ref": "#/components/schemas/chat"},
                    "examples": [{"payload": {"kind": "text", "text": "hi"}}],
                }
            },
            "schemas": {
                "chat": {
                    "type": "object",
                    "properties": {"kind": {"type": "string"}, "text": {"type": "string"}},
                    "required": ["kind"],
                }
            },
        },
    }


# --- Mutations: each changes one thing; returns the document or None where it does not apply.


def m(fn):
    def apply(doc):
        doc = copy.deepcopy(doc)
        return doc if fn(doc) is not False else None

    return apply


V2_ROOM = "/rooms/{roomId}"


def v2_op(doc, verb="publish"):
    return doc["channels"][V2_ROOM][verb]


MUTATIONS_V2 = {
    "seed": m(lambda d: None),
    "v2-channel-servers-undeclared": m(
        lambda d: "servers" in d["channels"][V2_ROOM]
        and d["channels"][V2_ROOM].update(servers=["staging"])
    ),
    "v2-operation-id-duplicate": m(lambda d: v2_op(d, "subscribe").update(operationId="sendChat")),
    "v2-trait-id-makes-duplicate": m(
        lambda d: v2_op(d, "subscribe").update(traits=[{"operationId": "sendChat"}])
    ),
    "v2-trait-id-removes-duplicate": m(
        lambda d: v2_op(d, "subscribe").update(
            operationId="sendChat", traits=[{"operationId": "other"}]
        )
    ),
    "v2-message-id-duplicate": m(
        lambda d: d["components"]["messages"]["notice"].update(messageId="chat")
    ),
    "v2-message-example-mismatch": m(
        lambda d: d["components"]["messages"]["chat"].update(examples=[{"payload": {"text": 5}}])
    ),
    "v2-message-example-headers-mismatch": m(
        lambda d: d["components"]["messages"]["chat"].update(
            headers={"type": "object", "properties": {"id": {"type": "integer"}}},
            examples=[{"headers": {"id": "seven"}, "payload": {"kind": "text"}}],
        )
    ),
    "v2-message-example-unknown-key": m(
        lambda d: d["components"]["messages"]["chat"].update(examples=[{"value": {"kind": "x"}}])
    ),
    "v2-discriminator-not-required": m(
        lambda d: d["components"]["schemas"]["chat"].update(discriminator="text")
    ),
    "v2-tags-duplicate": m(lambda d: v2_op(d).update(tags=[{"name": "a"}, {"name": "a"}])),
    "v2-server-key-invalid": m(
        lambda d: d.update(servers={"prod server": d["servers"]["production"]})
        or d["channels"][V2_ROOM].pop("servers", None)
    ),
    "v2-component-key-invalid": m(
        lambda d: d["components"]["schemas"].update({"chat schema": {"type": "string"}})
    ),
    "v2-security-undeclared": m(
        lambda d: d["servers"]["production"].update(security=[{"nope": []}])
    ),
    "v2-security-scopes-non-oauth": m(
        lambda d: d["servers"]["production"].update(security=[{"key": ["chat:write"]}])
    ),
    "v2-security-scope-undeclared": m(
        lambda d: d["servers"]["production"].update(security=[{"oauth": ["chat:admin"]}])
    ),
    "v2-parameter-undeclared": m(lambda d: d["channels"][V2_ROOM].pop("parameters")),
    "v2-parameter-unused": m(
        lambda d: d["channels"][V2_ROOM]["parameters"].update(extra={"schema": {"type": "string"}})
    ),
    "v2-server-variable-undeclared": m(lambda d: d["servers"]["production"].pop("variables")),
    "v2-server-variable-unused": m(
        lambda d: d["servers"]["production"]["variables"].update(port={"default": "1"})
    ),
    "v2-server-variable-default-not-in-enum": m(
        lambda d: d["servers"]["production"]["variables"]["host"].update(enum=["a", "b"])
    ),
    "v2-channel-query": m(
        lambda d: d["channels"].update({"/rooms/{roomId}?x=1": d["channels"].pop(V2_ROOM)})
    ),
    "v2-empty-ref": m(lambda d: v2_op(d).update(message={"$ref": ""})),
    "v2-ref-unresolved": m(lambda d: v2_op(d).update(message={"$ref": "#/components/messages/nope"})),
    "v2-schema-default-mismatch": m(
        lambda d: d["components"]["schemas"]["chat"]["properties"]["kind"].update(default=3)
    ),
    "v2-schema-examples-mismatch": m(
        lambda d: d["components"]["schemas"]["chat"]["properties"]["kind"].update(examples=[3])
    ),
    "v2-server-user-info": m(
        lambda d: d["servers"]["production"].update(url="ws://user:pw@{host}:9000")
    ),
    "v2-unknown-property": m(lambda d: d["info"].update(titel="Chat")),
    "v2-operation-trait-applied": m(
        lambda d: v2_op(d).update(traits=[{"$ref": "#/components/operationTraits/tagged"}])
    ),
}


def v3_ops(doc):
    return doc["operations"]


MUTATIONS_V3 = {
    "seed": m(lambda d: None),
    "v3-channel-servers-name": m(lambda d: d["channels"]["room"].update(servers=["production"])),
    "v3-channel-servers-not-a-server": m(
        lambda d: d["channels"]["room"].update(servers=[{"$ref": "#/channels/lobby"}])
    ),
    "v3-op-channel-string": m(lambda d: v3_ops(d)["greet"].update(channel="lobby")),
    "v3-op-message-string": m(lambda d: v3_ops(d)["greet"].update(messages=["hello"])),
    "v3-op-message-into-components": m(
        lambda d: v3_ops(d)["sendChat"].update(messages=[{"$ref": "#/components/messages/chat"}])
    ),
    "v3-op-message-other-channel": m(
        lambda d: v3_ops(d)["greet"].update(messages=[{"$ref": "#/channels/room/messages/notice"}])
    ),
    "v3-reply-message-other-channel": m(
        lambda d: v3_ops(d)["sendChat"]["reply"].update(
            messages=[{"$ref": "#/channels/lobby/messages/hello"}]
        )
    ),
    "v3-reply-channel-string": m(lambda d: v3_ops(d)["sendChat"]["reply"].update(channel="room")),
    "v3-empty-ref": m(lambda d: v3_ops(d)["greet"].update(channel={"$ref": ""})),
    "v3-ref-unresolved": m(lambda d: v3_ops(d)["greet"].update(channel={"$ref": "#/channels/nope"})),
    "v3-parameters-without-address": m(lambda d: d["channels"]["room"].pop("address")),
    "v3-parameters-with-null-address": m(lambda d: d["channels"]["room"].update(address=None)),
    "v3-parameter-unused": m(lambda d: d["channels"]["room"]["parameters"].update(extra={})),
    "v3-parameter-undeclared": m(lambda d: d["channels"]["room"].pop("parameters")),
    "v3-channel-query": m(lambda d: d["channels"]["lobby"].update(address="/lobby?x=1")),
    "v3-message-example-mismatch": m(
        lambda d: d["components"]["messages"]["chat"].update(examples=[{"payload": {"text": 5}}])
    ),
    "v3-message-example-unknown-key": m(
        lambda d: d["components"]["messages"]["chat"].update(examples=[{"value": {"kind": "x"}}])
    ),
    "v3-discriminator-not-required": m(
        lambda d: d["components"]["schemas"]["chat"].update(discriminator="text")
    ),
    "v3-tags-duplicate": m(lambda d: v3_ops(d)["greet"].update(tags=[{"name": "a"}, {"name": "a"}])),
    "v3-server-key-invalid": m(
        lambda d: d.update(servers={"prod server": d["servers"]["production"]})
        or d["channels"]["room"].pop("servers")
    ),
    "v3-component-key-invalid": m(
        lambda d: d["components"]["schemas"].update({"chat schema": {"type": "string"}})
    ),
    "v3-server-variable-undeclared": m(lambda d: d["servers"]["production"].pop("variables")),
    "v3-server-variable-unused": m(
        lambda d: d["servers"]["production"]["variables"].update(port={"default": "1"})
    ),
    "v3-schema-default-mismatch": m(
        lambda d: d["components"]["schemas"]["chat"]["properties"]["kind"].update(default=3)
    ),
    "v3-schema-examples-mismatch": m(
        lambda d: d["components"]["schemas"]["chat"]["properties"]["kind"].update(examples=[3])
    ),
    "v3-server-user-info": m(
        lambda d: d["servers"]["production"].update(host="user:pw@{host}:9000")
    ),
    "v3-unknown-property": m(lambda d: d["info"].update(titel="Chat")),
    "v3-action-invalid": m(lambda d: v3_ops(d)["greet"].update(action="publish")),
    "v3-crossed-ref-channel": m(
        lambda d: d.setdefault("components", {}).setdefault("channels", {}).update(
            lobby=d["channels"]["lobby"]
        )
        or d["channels"].update(lobby={"$ref": "#/components/channels/lobby"})
    ),
}

def with_binding(where, protocol, value):
    """A mutation adding `bindings.<protocol>` to the object `where(doc)` returns."""

    def mutate(d):
        where(d).setdefault("bindings", {})[protocol] = value

    return m(mutate)


def v2_channel(d):
    return d["channels"][V2_ROOM]


def v3_channel(d):
    return d["channels"]["room"]


def v2_message(d):
    return d["components"]["messages"]["chat"]


def v3_message(d):
    return d["components"]["messages"]["chat"]


# Binding documents, from the binding schemas: a valid and an invalid one per field of the ws
# channel binding, a few for other protocols.
for prefix, channel, message in (("v2", v2_channel, v2_message), ("v3", v3_channel, v3_message)):
    target = MUTATIONS_V2 if prefix == "v2" else MUTATIONS_V3
    target.update({
        f"{prefix}-binding-ws-valid": with_binding(channel, "ws", {
            "method": "GET",
            "query": {"type": "object", "properties": {"token": {"type": "string"}}},
            "headers": {"type": "object", "properties": {"X-Id": {"type": "string"}}},
            "bindingVersion": "0.1.0",
        }),
        f"{prefix}-binding-ws-method-invalid": with_binding(channel, "ws", {"method": "PUT"}),
        f"{prefix}-binding-ws-query-invalid": with_binding(channel, "ws", {"query": 5}),
        f"{prefix}-binding-ws-headers-invalid": with_binding(channel, "ws", {"headers": ["a"]}),
        f"{prefix}-binding-ws-version-invalid": with_binding(channel, "ws", {"bindingVersion": 1}),
        f"{prefix}-binding-ws-version-unknown": with_binding(
            channel, "ws", {"method": "GET", "bindingVersion": "9.9.9"}
        ),
        f"{prefix}-binding-ws-unknown-field": with_binding(channel, "ws", {"verb": "GET"}),
        f"{prefix}-binding-kafka-valid": with_binding(
            channel, "kafka", {"partitions": 3, "bindingVersion": "0.5.0"}
        ),
        f"{prefix}-binding-kafka-invalid": with_binding(
            channel, "kafka", {"partitions": -2, "bindingVersion": "0.5.0"}
        ),
        f"{prefix}-binding-mqtt-message-invalid": with_binding(
            message, "mqtt", {"payloadFormatIndicator": 2}
        ),
        f"{prefix}-binding-amqp-message-invalid": with_binding(
            message, "amqp", {"contentEncoding": 7}
        ),
        f"{prefix}-binding-amqp-message-valid": with_binding(
            message, "amqp", {"contentEncoding": "gzip", "bindingVersion": "0.3.0"}
        ),
    })

SEEDS = [
    ("2.4.0", seed_v2, MUTATIONS_V2),
    ("2.6.0", seed_v2, MUTATIONS_V2),
    ("3.0.0", seed_v3, MUTATIONS_V3),
    ("3.1.0", seed_v3, MUTATIONS_V3),
]


def generate(out_dir):
    """Writes every mutated document; returns [(file name, mutation id)]."""
    os.makedirs(out_dir, exist_ok=True)
    made = []
    for version, seed, mutations in SEEDS:
        base = seed(version)
        for mid, mutate in mutations.items():
            doc = mutate(base)
            if doc is None:
                continue
            name = f"{version}-{mid}.yaml"
            with open(os.path.join(out_dir, name), "w") as f:
                yaml.safe_dump(doc, f, sort_keys=False, allow_unicode=True)
            made.append((name, mid))
    return made


ORACLE = r"""
const path = require('path');
const { Parser, fromFile } = require('@asyncapi/parser');
(async () => {
  const parser = new Parser();
  for (const f of process.argv.slice(2)) {
    try {
      const { document, diagnostics } = await fromFile(parser, path.resolve(f)).parse();
      const codes = [...new Set(diagnostics.filter(d => d.severity === 0).map(d => d.code))];
      console.log(JSON.stringify({ file: path.basename(f), valid: document !== undefined, codes }));
    } catch (e) {
      console.log(JSON.stringify({ file: path.basename(f), valid: false, codes: ['exception'] }));
    }
  }
})();
"""


def run_oracle(out_dir, names, parser_dir):
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "oracle.cjs")
        with open(script, "w") as f:
            f.write(ORACLE)
        env = dict(os.environ)
        if parser_dir:
            env["NODE_PATH"] = os.path.join(parser_dir, "node_modules")
        out = subprocess.run(
            ["node", script] + [os.path.join(out_dir, n) for n in names],
            capture_output=True, text=True, env=env, check=True,
        ).stdout
    result = {}
    for line in out.splitlines():
        row = json.loads(line)
        result[row["file"]] = ("valid" if row["valid"] else "invalid", row["codes"])
    return result


def run_portico(out_dir, names, compile_bin):
    proc = subprocess.run(
        [compile_bin, "--lint", "--format", "json"] + [os.path.join(out_dir, n) for n in names],
        capture_output=True, text=True,
    )
    errors = {}
    for d in json.loads(proc.stdout or "[]"):
        if d["severity"] == "error":
            errors.setdefault(os.path.basename(d["file"]), set()).add(d["code"])
    return {n: ("invalid" if n in errors else "valid", sorted(errors.get(n, ()))) for n in names}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--no-oracle", action="store_true")
    ap.add_argument("--parser-dir", help="a folder whose node_modules holds @asyncapi/parser")
    ap.add_argument("--compile", default=os.path.join(ROOT, "target", "release", "compile"))
    args = ap.parse_args()

    out_dir = RECORD_DIR if args.record else tempfile.mkdtemp(prefix="differential-")
    if args.record:
        for old in os.listdir(out_dir) if os.path.isdir(out_dir) else []:
            if old.endswith(".yaml"):
                os.remove(os.path.join(out_dir, old))
    made = generate(out_dir)
    names = [n for n, _ in made]
    print(f"{len(made)} documents in {out_dir}")
    if args.no_oracle:
        return 0
    official = run_oracle(out_dir, names, args.parser_dir)
    portico = run_portico(out_dir, names, args.compile)

    agree = deliberate = 0
    rows = []
    print(f"{'document':58} {'official':8} {'portico':8}  note")
    for name, mid in made:
        o, o_codes = official[name]
        p, p_codes = portico[name]
        note = ""
        if o == p:
            agree += 1
        elif mid in DIFFERENCES and DIFFERENCES[mid][0] == p:
            deliberate += 1
            note = "deliberate: " + DIFFERENCES[mid][1]
        else:
            note = "DISAGREE"
        print(f"{name:58} {o:8} {p:8}  {note} [{','.join(o_codes)}] [{','.join(p_codes)}]")
        expected = DIFFERENCES[mid][0] if mid in DIFFERENCES else o
        reason = DIFFERENCES[mid][1] if expected != o else ""
        rows.append((name, o, ",".join(o_codes), expected, reason))
    total = len(made)
    print(
        f"\nagreement with the official parser: {agree}/{total} ({100 * agree / total:.1f}%); "
        f"deliberate differences: {deliberate}; unexplained: {total - agree - deliberate}"
    )
    if args.record:
        with open(os.path.join(out_dir, "verdicts.tsv"), "w") as f:
            f.write(
                "# Written by scripts/differential.py --record. document, official parser verdict"
                " (@asyncapi/parser 3.6.6), its error codes, Portico's verdict, why they differ"
                " (only deliberate differences).\n"
            )
            for row in rows:
                f.write("\t".join(row) + "\n")
    return 0 if total - agree - deliberate == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

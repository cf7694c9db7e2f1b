#!/usr/bin/env python3
"""Bundles the binding JSON Schemas of an unpacked `@asyncapi/specs` package into
compiler/schemas/bindings.json: {"<protocol>/<version>/<kind>": schema, ...}.

    npm pack @asyncapi/specs@6.11.1 && tar xzf asyncapi-specs-6.11.1.tgz
    scripts/vendor-binding-schemas.py package
"""
import json
import os
import sys

src = os.path.join(sys.argv[1], "bindings")
out = {}
for protocol in sorted(os.listdir(src)):
    for version in sorted(os.listdir(os.path.join(src, protocol))):
        folder = os.path.join(src, protocol, version)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    out[f"{protocol}/{version}/{name[:-5]}"] = json.load(f)
dest = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compiler", "schemas", "bindings.json")
with open(dest, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"{len(out)} binding schemas -> {dest}")

#!/usr/bin/env python3
"""Reload latency: from a spec saved to its new route serving, at default settings.

Starts `target/release/runtime --watch` on a folder of N APIs (default 30), then R times saves one
spec with a new topic (in place, or by rename as editors do) and measures, with a real WebSocket
client (Python `websockets`), how long until a handshake to the new topic succeeds. Prints the
median, p90, p99 and max. A benchmark, not a test: run it on a quiet machine.

    scripts/setup-test-deps.sh && cargo build --release -p portico-runtime
    target/ci/venv/bin/python scripts/reload-latency.py [--apis 30] [--rounds 40]
"""

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import websockets


def spec(i: int, topics: list[str]) -> str:
    channels = "".join(
        f"  t{n}:\n    address: {t}\n    messages:\n      m:\n        payload: {{type: string}}\n"
        for n, t in enumerate(topics)
    )
    operations = "".join(
        f"  op{n}:\n    action: receive\n    channel: {{$ref: '#/channels/t{n}'}}\n"
        for n in range(len(topics))
    )
    return (
        "asyncapi: 3.1.0\n"
        f"info: {{title: Api {i}, version: v1, description: Reload benchmark API {i}.}}\n"
        f"x-gateway: {{context: /api{i}, endpoints: {{production: 'echo:'}}}}\n"
        f"channels:\n{channels}operations:\n{operations}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serving(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(url, open_timeout=1):
                return True
        except Exception:
            await asyncio.sleep(0.002)
    return False


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apis", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--binary", default="target/release/runtime")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "specs")
        os.mkdir(folder)
        for i in range(args.apis):
            with open(os.path.join(folder, f"api{i}.yaml"), "w") as f:
                f.write(spec(i, ["/a"]))
        port, admin = free_port(), free_port()
        log = open(os.path.join(tmp, "runtime.log"), "w")
        proc = subprocess.Popen(
            [args.binary, "--watch", "--allow-unauthenticated", "--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{admin}", folder],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        try:
            if not await serving(f"ws://127.0.0.1:{port}/api0/v1/a", time.monotonic() + 30):
                sys.exit("the runtime did not start; see its log")
            await asyncio.sleep(0.5)
            samples = []
            for r in range(args.rounds):
                topic = f"/new{r}"
                target = os.path.join(folder, "api0.yaml")
                text = spec(0, ["/a", topic])
                by_rename = r % 2 == 1
                t0 = time.monotonic()
                if by_rename:
                    tmpfile = os.path.join(folder, ".api0.yaml.swp")
                    with open(tmpfile, "w") as f:
                        f.write(text)
                    os.rename(tmpfile, target)
                else:
                    with open(target, "w") as f:
                        f.write(text)
                ok = await serving(f"ws://127.0.0.1:{port}/api0/v1{topic}", t0 + 10)
                if not ok:
                    sys.exit(f"round {r}: the new route never served")
                samples.append((time.monotonic() - t0) * 1000)
                await asyncio.sleep(0.4)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(f"reload latency, {args.apis} APIs, {len(samples)} saves (half in place, half by rename):")
    print(f"  median {statistics.median(samples):.1f} ms  p90 {pick(0.90):.1f} ms  "
          f"p99 {pick(0.99):.1f} ms  max {samples[-1]:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())

#!/usr/bin/env python3
"""A second load tool for scripts/bench.sh, independent of the Rust one (tests/src/bin/load.rs):
Python `websockets` on asyncio. Each of CONNECTIONS connections sends a SIZE-byte text message,
waits for its echo, and repeats for SECONDS; prints the same JSON line as `load pingpong`.

Usage: pingpong.py URL CONNECTIONS SECONDS SIZE
"""
import asyncio
import json
import sys
import time

import websockets


async def one(url, size, deadline, rtts):
    async with websockets.connect(url, max_size=None, compression=None, ping_interval=None) as ws:
        payload = "x" * size
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            await ws.send(payload)
            while True:
                reply = await ws.recv()
                if isinstance(reply, str):
                    break
            rtts.append(time.perf_counter() - sent)


async def main(url, connections, seconds, size):
    rtts = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(one(url, size, deadline, rtts) for _ in range(connections)))
    elapsed = max(time.perf_counter() - started, seconds)
    rtts.sort()
    pct = lambda p: rtts[int((len(rtts) - 1) * p)] * 1e6 if rtts else 0.0
    print(json.dumps({"roundTrips": len(rtts), "perSecond": round(len(rtts) / elapsed),
                      "p50us": round(pct(0.5), 1), "p99us": round(pct(0.99), 1)}))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))

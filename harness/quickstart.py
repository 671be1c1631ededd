"""`make run` until scenarios land: start the mockserver, send a bounded burst, show its stats.

Sends REQUESTS requests over CONNECTIONS keep-alive connections (asyncio + aiohttp), then
prints what the mockserver itself counted, so the two numbers can be compared at a glance.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

REQUESTS = 2000
CONNECTIONS = 20


async def burst(url: str) -> tuple[int, float]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i)
    done = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while not queue.empty():
            queue.get_nowait()
            async with session.get(url + "/delay/2") as resp:
                await resp.read()
            done += 1

    start = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as s:
        await asyncio.gather(*(client(s) for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - start
        async with s.get(url + "/_mock/stats") as resp:
            stats = await resp.json()
    print(json.dumps({"mockserver_counted": stats["requests_total"],
                      "by_route": stats["by_route"]}, indent=2))
    return done, elapsed


def main() -> int:
    exe = Path(sys.executable).parent / "mockserver"
    proc = subprocess.Popen([str(exe), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        print(line)
        url = line.removeprefix("listening on ")
        done, elapsed = asyncio.run(burst(url))
        print(f"sent {done} requests in {elapsed:.2f}s ({done / elapsed:.0f} req/s)")
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

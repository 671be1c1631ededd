"""Reference: a bare aiohttp loop (N coroutines, one session) doing the same requests,
with no harness around it. Prints the requests/s it reached.

Set up as the harness's aiohttp engine is (one session, limit = N, no decompression) and,
like a harness run, it counts only after a one-second warm-up, so the ratio compares the
loops, not their start-up."""

import asyncio
import sys
import time

import aiohttp

WARMUP_S = 1.0


async def main(url: str, concurrency: int, seconds: float) -> None:
    done = 0
    start = time.perf_counter() + WARMUP_S
    end = start + seconds

    async def user(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while (now := time.perf_counter()) < end:
            async with session.get(url) as resp:
                await resp.read()
            if now >= start:
                done += 1

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        await asyncio.gather(*(user(session) for _ in range(concurrency)))
        print(done / (time.perf_counter() - start))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))

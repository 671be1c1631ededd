"""Reference: a bare aiohttp loop (N coroutines, one session) doing the same requests,
with no harness around it. Prints the requests/s it reached."""

import asyncio
import sys
import time

import aiohttp


async def main(url: str, concurrency: int, seconds: float) -> None:
    done = 0
    end = time.perf_counter() + seconds

    async def user(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < end:
            async with session.get(url) as resp:
                await resp.read()
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(user(session) for _ in range(concurrency)))
        print(done / (time.perf_counter() - start))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))

"""The comparison target: an aiohttp web.Application serving the mockserver's routes."""

import asyncio
import sys

from aiohttp import web


async def default(request: web.Request) -> web.Response:
    return web.Response(body=b"ok")


async def delay(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.match_info["ms"]) / 1000)
    return web.Response(body=b"ok")


app = web.Application()
app.router.add_get("/delay/{ms}", delay)
app.router.add_get("/{tail:.*}", default)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)

"""Reference ceiling: the barest httptools protocol on uvloop, one canned reply, no features."""

import asyncio
import sys

import httptools
import uvloop

REPLY = (b"HTTP/1.1 200 OK\r\nServer: mockserver\r\nContent-Type: application/octet-stream\r\n"
         b"Content-Length: 2\r\n\r\nok")


class Bare(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data):
        self.parser.feed_data(data)

    def on_message_complete(self):
        self.transport.write(REPLY)


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Bare, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))

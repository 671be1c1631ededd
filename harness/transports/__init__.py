"""How a request goes on the wire: one Transport interface (base.py) and its
implementations, one module per protocol and client (http1_fast, http1_aiohttp,
http1_stdlib), each named in core.registry.TRANSPORTS. Below the clients, which schedule
users and know nothing of sockets; above core/, whose vocabulary they speak."""

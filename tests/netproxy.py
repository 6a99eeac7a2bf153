"""A TCP proxy in front of the real PostgreSQL server, to cut connections as a network does.

``pg_terminate_backend`` ends a session politely (a FATAL message, then the end of the
stream); a network failure does not: :meth:`TcpProxy.reset_all` aborts every client-side
socket with an RST (``SO_LINGER`` 0), so the driver reads ``ConnectionResetError`` in the
middle of whatever it was doing, while the server merely sees its client go away.
asyncpg's own adversity tests run the server behind such a proxy.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from contextlib import suppress


class TcpProxy:
    """``async with TcpProxy(host, port) as proxy:`` then connect to ``proxy.port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.upstream_port = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.reset_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            client_w.close()
            return
        self._links.append((client_w, up_w))
        for reader, writer in ((client_r, up_w), (up_r, client_w)):
            task = asyncio.create_task(_pipe(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def connections(self) -> int:
        return len(self._links)

    def reset_all(self) -> int:
        """Cut every connection made so far: an RST to the client, a close to the server."""
        links, self._links = self._links, []
        for client_w, up_w in links:
            sock = client_w.get_extra_info("socket")
            if sock is not None:
                with suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client_w.transport.abort()
            up_w.transport.abort()
        return len(links)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()

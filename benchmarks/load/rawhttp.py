"""A minimal HTTP/1.1 keep-alive client on raw asyncio streams, for the load benchmark. Not httpx: on 2 shared
cores the load generator competes with the server it measures, and httpx's AsyncClient costs ~0.4 cores at ~500
requests/s; this writes one request and reads one ``Content-Length`` response (loopback only: no TLS, no chunks)."""

from __future__ import annotations

import asyncio
import contextlib


class RawHTTPError(Exception):
    """The server closed the connection or sent a response this client does not parse."""


class Connection:
    """One keep-alive connection; ``post`` sends a JSON body and returns (status, body bytes)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = self.reader = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), len(body), body))
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise RawHTTPError("connection closed before the response") from exc
        status_line, *lines = head[:-4].split(b"\r\n")
        fields = {name.strip().lower(): value.strip().lower() for name, _, value in (x.partition(b":") for x in lines)}
        if b"content-length" not in fields:
            await self.close()
            raise RawHTTPError("response without Content-Length")
        data = await self.reader.readexactly(int(fields[b"content-length"]))
        if fields.get(b"connection") == b"close":
            await self.close()
        return int(status_line.split(b" ", 2)[1]), data

"""A minimal HTTP/1.1 keep-alive client on raw asyncio streams, for the load benchmark.

Why not httpx: on 2 shared cores the load generator competes with the server it measures. httpx's
AsyncClient costs ~0.4 cores at ~500 requests/s (its own parsing, header models, pool bookkeeping);
this client writes one pre-built request and reads one ``Content-Length`` response, nothing more.
It is only for talking to ``mtst serve`` on loopback: no TLS, no redirects, no chunked responses.
"""

from __future__ import annotations

import asyncio


class RawHTTPError(Exception):
    """The server closed the connection or sent a response this client does not parse."""


class Connection:
    """One keep-alive connection; ``post`` sends a JSON body and returns (status, body bytes)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = self.reader = None

    async def post(self, path: str, body: bytes, headers: bytes = b"") -> tuple[int, bytes]:
        """POST ``body`` as application/json; ``headers`` are extra raw header lines ending in CRLF."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n%s\r\n%s"
                          % (path.encode(), self.host.encode(), len(body), headers, body))
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise RawHTTPError("connection closed before the response") from exc
        status_line, *header_lines = head[:-4].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = None
        keep_alive = True
        for line in header_lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
        if length is None:
            await self.close()
            raise RawHTTPError("response without Content-Length")
        data = await self.reader.readexactly(length)
        if not keep_alive:
            await self.close()
        return status, data

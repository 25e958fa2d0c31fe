"""The load harness's HTTP client against a tiny server on loopback: keep-alive, a closing server, a bad reply."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.load.rawhttp import Connection, RawHTTPError


async def _serve(replies: list[bytes]) -> tuple[asyncio.Server, int]:
    """Answers each request (read up to its body) with the next reply; closes when the reply says so."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while replies:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            reply = replies.pop(0)
            writer.write(reply)
            await writer.drain()
            if b"close" in reply:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_posts_over_one_kept_alive_connection_and_reopens_after_a_close() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    closing = b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    async def run() -> list[tuple[int, bytes]]:
        server, port = await _serve([ok, closing, ok])
        connection = Connection("127.0.0.1", port)
        answers = [await connection.post("/v1/embed", b'{"sentences": ["a"]}') for _ in range(3)]
        await connection.close()
        server.close()
        return answers

    assert asyncio.run(run()) == [(200, b"{}"), (503, b""), (200, b"{}")]


def test_a_reply_without_content_length_is_an_error() -> None:
    async def run() -> None:
        server, port = await _serve([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"])
        try:
            await Connection("127.0.0.1", port).post("/v1/embed", b"{}")
        finally:
            server.close()

    with pytest.raises(RawHTTPError):
        asyncio.run(run())

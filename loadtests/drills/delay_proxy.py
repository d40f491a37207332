"""A TCP proxy that adds a fixed delay to every request: stands in for S3's per-call latency in front
of moto's server (which answers in about a millisecond on loopback).

    python -m loadtests.drills.delay_proxy --target 127.0.0.1:PORT --delay-ms 30 [--port LISTEN]

A request is the first bytes the client sends after the previous answer began (HTTP keep-alive: one
request at a time per connection), so each S3 call is delayed once, whatever its body size. Prints
the listening port on its first line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from devstack.processes import free_port

CHUNK = 65536


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, before_chunk=None) -> None:
    try:
        while data := await source.read(CHUNK):
            if before_chunk is not None:
                await before_chunk()
            sink.write(data)
            await sink.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            sink.close()


def handler(target_host: str, target_port: int, delay: float):
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        answered = asyncio.Event()
        answered.set()  # the connection's first bytes are a request

        async def delay_new_request() -> None:
            if answered.is_set():
                answered.clear()
                await asyncio.sleep(delay)

        async def mark_answered() -> None:
            answered.set()

        await asyncio.gather(_pipe(client_reader, upstream_writer, before_chunk=delay_new_request),
                             _pipe(upstream_reader, client_writer, before_chunk=mark_answered))

    return handle


async def serve(port: int, target_host: str, target_port: int, delay: float) -> None:
    server = await asyncio.start_server(handler(target_host, target_port, delay), "127.0.0.1", port, backlog=512)
    print(port, flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.drills.delay_proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, default=30.0, help="added to every request (>= 0)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--target must be HOST:PORT, got {args.target!r}")
    if args.delay_ms < 0:
        parser.error(f"--delay-ms must be >= 0, got {args.delay_ms}")
    asyncio.run(serve(args.port or free_port(), host, int(port), args.delay_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-replay`'s pieces: the delaying proxy really adds its delay to every call (and forwards the
bytes unchanged), the drain of a real store into the real PostgreSQL is counted, and entries land in
their own section of docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.storage.dead_letter import LocalDeadLetterStore
from devstack.processes import free_port, stop
from loadtests.bench.benchmarks_doc import insert_in_section
from loadtests.bench.replay import SECTION, drain, fill, letters_of, main
from loadtests.drills.delay_proxy import main as proxy_main


async def echo_server(port: int) -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", port)


def test_the_proxy_delays_every_request_once_and_forwards_its_bytes() -> None:
    target = free_port()

    async def scenario(proxy_port: int) -> list[float]:
        server = await echo_server(target)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            timings = []
            for word in (b"get", b"put", b"list"):
                started = time.perf_counter()
                writer.write(word)
                assert await reader.readexactly(len(word)) == word.upper()
                timings.append(time.perf_counter() - started)
            writer.close()
            return timings

    proxy = subprocess.Popen([sys.executable, "-m", "loadtests.drills.delay_proxy", "--target", f"127.0.0.1:{target}",
                              "--delay-ms", "80"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proxy.stdout.readline())
        timings = asyncio.run(scenario(port))
    finally:
        stop(proxy)
    assert all(seconds >= 0.08 for seconds in timings), timings


def test_the_proxy_refuses_a_bad_target(capsys) -> None:
    with pytest.raises(SystemExit):
        proxy_main(["--target", "nowhere"])
    assert "--target must be HOST:PORT" in capsys.readouterr().err


def test_a_drain_replays_every_reading_into_postgresql(tmp_path: Path, postgres_url: str) -> None:
    store = LocalDeadLetterStore(tmp_path / "dead-letter")
    letters = letters_of("bench-test", 3000, 250)

    async def scenario():
        await fill(store, letters)
        return await drain("local", store, postgres_url, len(letters), 3000)

    result = asyncio.run(scenario())
    assert (result.letters, result.stored) == (12, 3000) and result.rate > 0
    assert asyncio.run(store.names()) == []


def test_entries_go_to_their_own_section() -> None:
    document = "# Benchmarks\n\n## Ingest\n\nold\n"
    first = insert_in_section(document, SECTION, "\n### run 1\n")
    assert first == f"# Benchmarks\n\n## Ingest\n\nold\n\n{SECTION}\n\n### run 1\n"
    second = insert_in_section(first + "\n## Later section\n", SECTION, "\n### run 2\n")
    assert second.index("### run 2") < second.index("## Later section")


def test_bad_flags_are_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--readings", "0"])
    assert "--readings must be >= 1" in capsys.readouterr().err



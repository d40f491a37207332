"""The spool: request bodies that could not be delivered, one JSON document per line, replayed on the
next start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from loadtests.simulator.generation import Body


class Spool:
    """Append-only JSONL file; every append is fsynced because it is the only copy of those readings."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, bodies: Sequence[Body]) -> None:
        if not bodies:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as spool_file:
            # A crash mid-write leaves a torn last line; start on a fresh line so it stays the only bad one.
            if spool_file.tell() > 0 and not self._ends_with_newline():
                spool_file.write(b"\n")
            spool_file.write(b"".join(json.dumps(body, separators=(",", ":")).encode() + b"\n" for body in bodies))
            spool_file.flush()
            os.fsync(spool_file.fileno())

    def read(self) -> tuple[list[Body], list[str]]:
        """The spooled bodies, and the lines that are not a JSON object or list (e.g. a torn write)."""
        if not self.path.exists():
            return [], []
        bodies: list[Body] = []
        malformed: list[str] = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                body = json.loads(line)
            except ValueError:
                body = None
            if isinstance(body, dict | list):
                bodies.append(body)
            else:
                malformed.append(line)
        return bodies, malformed

    def truncate(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("r+b") as spool_file:
            spool_file.truncate(0)
            os.fsync(spool_file.fileno())

    def replace(self, bodies: Sequence[Body]) -> None:
        """Atomically rewrite the spool with exactly `bodies` (a crash leaves the old or the new file)."""
        staging = self.path.with_name(self.path.name + ".tmp")
        staging.unlink(missing_ok=True)
        Spool(staging).append(bodies)
        staging.touch()
        os.replace(staging, self.path)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as spool_file:
            spool_file.seek(-1, os.SEEK_END)
            return spool_file.read(1) == b"\n"


def rejected_path(spool_path: Path) -> Path:
    """Where bodies the service refused for good go: kept for inspection, never replayed."""
    return spool_path.with_name(spool_path.stem + ".rejected.jsonl")

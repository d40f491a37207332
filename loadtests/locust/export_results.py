"""Upload a load test's results folder to S3, once, periodically, or around the command that writes it.

    python -m loadtests.locust.export_results --dir DIR --bucket B --prefix P [--watch SECONDS] [-- COMMAND ...]

Every file under DIR goes to `s3://B/P<path relative to DIR>`; a file is uploaded again only when its
size or modification time changed. Without COMMAND: one upload, or with `--watch` one every SECONDS
until SIGTERM/SIGINT, then a last one. With COMMAND (the LoadTest stack's Locust master): run it, upload
every SECONDS while it runs (when `--watch` is given) and once more after it exits, and exit with its
exit code, so a Fargate task that stops keeps its results. SIGTERM and SIGINT reach COMMAND as SIGINT
(Locust writes its HTML report when interrupted, not when terminated).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3

# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (the common subset)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class Exporter:
    """Uploads what changed under `directory` since the previous call of `export`."""

    def __init__(self, directory: Path, bucket: str, prefix: str, s3: Any = None) -> None:
        self.directory = directory
        self.bucket = bucket
        self.prefix = prefix
        self.s3 = s3 or boto3.client("s3")
        self._uploaded: dict[Path, tuple[int, int]] = {}

    def export(self) -> list[str]:
        """Upload new and changed files; returns their keys (sorted)."""
        keys = []
        if not self.directory.is_dir():
            return keys
        for path in sorted(p for p in self.directory.rglob("*") if p.is_file()):
            stat = path.stat()
            version = (stat.st_size, stat.st_mtime_ns)
            if self._uploaded.get(path) == version:
                continue
            key = self.prefix + path.relative_to(self.directory).as_posix()
            self.s3.upload_file(str(path), self.bucket, key)
            self._uploaded[path] = version
            keys.append(key)
        return keys


def normalized_prefix(prefix: str) -> str:
    """`runs` and `runs/` both mean the folder `runs/`; an empty prefix is the bucket's root."""
    if prefix.startswith("/"):
        raise ValueError(f"--prefix must not start with '/' (S3 keys have no leading slash), got {prefix!r}")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def run(exporter: Exporter, command: Sequence[str], watch: float | None, stop: threading.Event) -> int:
    """Export every `watch` seconds until `command` exits (or `stop` is set when there is none), then once
    more. Returns the command's exit code (0 without one)."""
    child: subprocess.Popen | None = None
    previous = {}
    if command:
        # ECS stops a task with SIGTERM to PID 1 (this process). Locust writes its HTML report only when
        # interrupted (SIGINT); on SIGTERM it exits without one. So either signal reaches it as SIGINT.
        # Installed before the start: the child then begins with default handling even when this process
        # was started with SIGINT ignored (a background job of a non-interactive shell).
        def forward(_signum: int, _frame: object) -> None:
            if child is not None:
                child.send_signal(signal.SIGINT)

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, forward)
        child = subprocess.Popen(list(command))  # noqa: S603 - the caller's own command line
        threading.Thread(target=lambda: (child.wait(), stop.set()), daemon=True).start()
    try:
        while watch is not None and not stop.wait(watch):
            _report(exporter.export())
        if child is not None:
            child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _report(exporter.export())
    return child.returncode if child is not None else 0


def _report(keys: list[str]) -> None:
    if keys:
        print(f"export_results: uploaded {len(keys)} file(s): {', '.join(keys[:5])}"
              f"{' ...' if len(keys) > 5 else ''}", flush=True)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(prog="python -m loadtests.locust.export_results", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="results folder to upload")
    parser.add_argument("--bucket", required=True, help="S3 bucket name")
    parser.add_argument("--prefix", default="", help="key prefix, e.g. runs/ (default: the bucket root)")
    parser.add_argument("--watch", type=float, help="upload again every SECONDS (> 0) until the command exits "
                                                    "or, without one, until SIGTERM/SIGINT")
    args = parser.parse_args(argv)
    if not _BUCKET.match(args.bucket):
        parser.error(f"--bucket {args.bucket!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)")
    try:
        args.prefix = normalized_prefix(args.prefix)
    except ValueError as error:
        parser.error(str(error))
    if args.watch is not None and args.watch <= 0:
        parser.error(f"--watch must be a positive number of seconds, got {args.watch}")
    if not command and not args.dir.is_dir():
        parser.error(f"--dir {args.dir} is not a directory")
    return args, command


def main(argv: Sequence[str] | None = None) -> int:
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()
    if not command:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    return run(Exporter(args.dir, args.bucket, args.prefix), command, args.watch, stop)


if __name__ == "__main__":
    sys.exit(main())

"""Where a recorded benchmark number comes from: the machine it ran on and the git revision measured.

Shared by every benchmark and drill that appends to docs/ (bench_ingest, drill_bluegreen, bench).
"""

from __future__ import annotations

import os
import platform
import subprocess


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def machine() -> str:
    """e.g. `2 cores (AMD EPYC 7B13), 23 GiB RAM, CPython 3.11.7`."""
    return (f"{os.cpu_count()} cores ({cpu_model()}), {memory_gib():.0f} GiB RAM, "
            f"{platform.python_implementation()} {platform.python_version()}")


def revision() -> str:
    """Short commit id, with `+dirty` when tracked files differ from it (untracked files do not count)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    commit = head.stdout.strip()
    if not commit:
        return "unknown"
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, check=False)
    return f"{commit}+dirty" if changed.stdout.strip() else commit

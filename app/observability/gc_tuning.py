"""The garbage collector's settings for a long-running server process.

Measured (`make bench` accounting, and CPU per ingest request in-process, docs/benchmarks.md): with
CPython's defaults (a generation-0 pass every 700 container allocations) a worker spent about a fifth of
its CPU in the collector, and each full collection walked the whole heap of imported modules (FastAPI,
pydantic, SQLAlchemy, botocore: ~1 M objects) for ~160 ms, stalling every request on the event loop
(the 300-600 ms loop lag of the light-load phase). So, once start-up is done:

- `gc.freeze()` moves everything alive then (modules, settings, pools) out of the collector's sight:
  later collections walk only what requests allocate;
- generation 0 runs every GEN0_THRESHOLD allocations instead of 700: fewer, still small, passes.
Reference counting still frees almost everything at once; only cyclic garbage waits a little longer.
On the way out both are undone, so a process that starts and stops many apps (the test suite) does
not keep each one's frozen objects forever.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

GEN0_THRESHOLD = 50_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 100


def tune_for_serving() -> Callable[[], None]:
    """Call once the process has started (after imports, connection pools, caches); returns the undo."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)

    def restore() -> None:
        gc.set_threshold(*previous)
        gc.unfreeze()

    return restore

"""The simulator's item counters and the summary line it prints from them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields


@dataclass
class Stats:
    """Item counters. sent = handed to the service (new and replayed); accepted = stored or dead-lettered
    (202, also counted in dead_lettered); flagged = the service said is_anomaly."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    anomalies_injected: int = 0
    flagged: int = 0
    spooled: int = 0
    replayed: int = 0
    rejected: int = 0
    retries: int = 0
    rate_limited: int = 0
    started_at: float = field(default_factory=time.monotonic, repr=False)

    def line(self, label: str = "") -> str:
        elapsed = time.monotonic() - self.started_at
        counters = " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self) if f.name != "started_at")
        return f"[simulator{' ' + label if label else ''} {elapsed:.1f}s] {counters}"

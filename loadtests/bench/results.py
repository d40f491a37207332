"""What `make bench` measured (configuration, one measurement per phase, CPU accounting) and the verdict
against the brief's targets (app throughput ratio, light-load latency factors, zero failures).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtests.bench.accounting import GROUPS, Timing

TARGET_RATIO = 0.6
LIGHT_P50_FACTOR = 3.0  # app p50 <= 3x the ceiling's p50 under the same light load
LIGHT_P99_FACTOR = 2.0  # app p99 <= 2x the ceiling's p99
PHASES = ("ceiling", "ceiling_light", "app", "light")
# Locust keeps times under 100 ms rounded to the millisecond, so a percentile that reads 0 ms was under
# 0.5 ms. Dividing by it as 0.5 ms gives the smallest factor the truth allows (never "inf").
LOCUST_FLOOR_MS = 0.5


@dataclass(frozen=True)
class BenchConfig:
    """Load shape and set-up; the same for both targets."""

    users: int = 1000
    ramp: float = 30.0
    hold: float = 60.0
    app_workers: int = 2
    locust_workers: int = 0

    @property
    def generator(self) -> str:
        if self.locust_workers == 0:
            return "Locust 1 process"
        return f"Locust master + {self.locust_workers} worker{'s' if self.locust_workers > 1 else ''}"


@dataclass(frozen=True)
class Measurement:
    """One target's hold window, from loadtests.locust.run's summary.json."""

    target: str
    users: int
    requests: int
    failures: int
    rps: float
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def failure_percent(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Accounting:
    """Where one window's core-seconds went: CPU s per 1,000 requests by group, and the app's timings."""

    cpu_per_thousand: dict[str, float]
    timings: dict[str, Timing]


@dataclass(frozen=True)
class BenchResult:
    ceiling: Measurement
    app: Measurement
    light: Measurement
    ceiling_light: Measurement
    accounting: dict[str, Accounting] = field(default_factory=dict)  # keyed by PHASES
    outbox_drain_seconds: float | None = None  # the relay's catch-up between the heavy and light phases

    @property
    def ratio(self) -> float:
        return self.app.rps / self.ceiling.rps if self.ceiling.rps else 0.0

    @property
    def light_p50_factor(self) -> float:
        return self.light.p50_ms / max(self.ceiling_light.p50_ms, LOCUST_FLOOR_MS)

    @property
    def light_p99_factor(self) -> float:
        return self.light.p99_ms / max(self.ceiling_light.p99_ms, LOCUST_FLOOR_MS)

    def light_factor_text(self, percentile: str) -> str:
        """"6.0x", or "≥ 10.0x" when the ceiling's percentile read 0 ms (the factor is then a lower bound)."""
        factor = self.light_p50_factor if percentile == "p50" else self.light_p99_factor
        ceiling_ms = self.ceiling_light.p50_ms if percentile == "p50" else self.ceiling_light.p99_ms
        return f"{'≥ ' if ceiling_ms < LOCUST_FLOOR_MS else ''}{factor:.1f}x"

    @property
    def light_within_target(self) -> bool:
        return (self.light.failures == 0 and self.light_p50_factor <= LIGHT_P50_FACTOR
                and self.light_p99_factor <= LIGHT_P99_FACTOR)


SERVER_GROUPS = tuple(group for group in GROUPS if group != "Locust")  # the accounting's groups but the load generator


def ratio_budget(result: BenchResult, cores: int) -> str | None:
    """Why the ratio is what it is, from the CPU accounting: the ceiling is bound by its one Locust process
    (req/s ≈ 1 / L_c), the app phase by all the cores (≈ cores / (L_a + S)), so the ratio is
    ≈ cores / (L_a / L_c + S / L_c), where L_c and L_a are Locust's CPU per request against the ceiling
    and the app and S is the server side's (every group but Locust). Says how small S must be for the
    target. None without the accounting of both heavy phases."""
    ceiling, app = result.accounting.get("ceiling"), result.accounting.get("app")
    if ceiling is None or app is None or not ceiling.cpu_per_thousand.get("Locust") \
            or "Locust" not in app.cpu_per_thousand:
        return None
    locust_ceiling, locust_app = ceiling.cpu_per_thousand["Locust"], app.cpu_per_thousand["Locust"]
    server = {group: app.cpu_per_thousand[group] for group in SERVER_GROUPS if group in app.cpu_per_thousand}
    server_total = sum(server.values())
    predicted = cores / ((locust_app + server_total) / locust_ceiling)
    allowed = cores * locust_ceiling / TARGET_RATIO - locust_app
    parts = ", ".join(f"{group} {value:.2f}" for group, value in server.items())
    return (f"ratio budget: Locust {locust_ceiling:.2f} ms of CPU per request against the ceiling, "
            f"{locust_app:.2f} against the app; the server side {server_total:.2f} ({parts}). On {cores} cores "
            f"that predicts {predicted:.2f}; {TARGET_RATIO:.2f} needs the server side at ≤ {allowed:.2f} ms "
            f"({allowed / locust_ceiling:.1f}x Locust's cost per request against the ceiling).")


def verdict(result: BenchResult) -> tuple[str, list[str]]:
    """("PASS" | "MISS", the targets missed)."""
    missed = []
    if result.app.failures:
        missed.append(f"{result.app.failures} failed requests at {result.app.users} users (target 0)")
    if result.ratio < TARGET_RATIO:
        missed.append(f"app throughput {result.ratio:.0%} of the ceiling (target ≥ {TARGET_RATIO:.0%})")
    if result.light.failures:
        missed.append(f"{result.light.failures} failed requests under light load (target 0)")
    if result.light_p50_factor > LIGHT_P50_FACTOR:
        missed.append(f"light load p50 {result.light_factor_text('p50')} the ceiling's (target ≤ {LIGHT_P50_FACTOR:g}x)")
    if result.light_p99_factor > LIGHT_P99_FACTOR:
        missed.append(f"light load p99 {result.light_factor_text('p99')} the ceiling's (target ≤ {LIGHT_P99_FACTOR:g}x)")
    return ("MISS" if missed else "PASS"), missed

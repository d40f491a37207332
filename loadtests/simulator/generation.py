"""Reading generation: seeded, pure functions for seed-002 readings and seed-004 device records.

Device profiles, values drawn around each tag's centre and injected anomalies (spikes inside the
valid range), so a run with the same seed produces the same data. The Locust users draw from here too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Shape = Literal["seed002", "seed004"]
Item = dict[str, Any]
Body = Item | list[Item]  # POST /ingest takes one item, POST /ingest/batch a list


@dataclass(frozen=True)
class MetricProfile:
    """How one tag's values are drawn, the service's valid range, and where injected spikes land.

    Spikes stay inside the valid range (so the service accepts them) but many standard deviations
    from the mean (so its rolling z-score flags them).
    """

    mean: float
    stddev: float
    low: float | None
    high: float | None
    spikes: tuple[float, ...]
    decimals: int

    def clip(self, value: float) -> float:
        if self.low is not None:
            value = max(self.low, value)
        if self.high is not None:
            value = min(self.high, value)
        return value


SEED002_PROFILES: dict[str, MetricProfile] = {
    "fermenter_temp": MetricProfile(37.0, 1.0, 30.0, 50.0, spikes=(30.5, 48.5), decimals=2),
    "fermenter_ph": MetricProfile(7.0, 0.2, 5.0, 9.0, spikes=(5.3, 8.7), decimals=3),
    "agitator_rpm": MetricProfile(450.0, 40.0, 200.0, 700.0, spikes=(205.0, 695.0), decimals=1),
}
SEED002_TAGS = tuple(SEED002_PROFILES)

SEED004_PROFILES: dict[str, MetricProfile] = {
    "temperature": MetricProfile(22.0, 2.0, -50.0, 100.0, spikes=(-20.0, 65.0), decimals=2),
    "humidity": MetricProfile(45.0, 5.0, 0.0, 100.0, spikes=(4.0, 96.0), decimals=2),
    "battery_level": MetricProfile(80.0, 5.0, 0.0, 100.0, spikes=(12.0,), decimals=1),
    "energy_consumption": MetricProfile(1.5, 0.3, 0.0, None, spikes=(6.5,), decimals=3),
}
SEED004_METRICS = tuple(SEED004_PROFILES)
SEED004_FIELDS = (
    "device_id", "device_type", "temperature", "humidity", "battery_level", "energy_consumption",
    "latitude", "longitude", "status", "firmware_version", "timestamp",
)
DEVICE_TYPES = ("environment_sensor", "smart_meter", "weather_station", "thermostat")
FIRMWARE_VERSIONS = ("1.4.2", "1.5.0", "2.0.1")
SITE_LATITUDE, SITE_LONGITUDE = 52.3676, 4.9041
LOW_BATTERY_PERCENT = 20.0


@dataclass(frozen=True)
class Device:
    """A simulated device's fixed attributes (seed004 uses all of them, seed002 only the id)."""

    index: int
    device_id: str
    device_type: str
    latitude: float
    longitude: float
    firmware_version: str


@dataclass(frozen=True)
class Generated:
    """One item to send, and whether the generator deliberately made it anomalous."""

    body: Item
    anomaly: bool


def make_devices(shape: Shape, count: int, seed: int) -> list[Device]:
    rng = random.Random(f"{seed}:devices")
    prefix = "fermenter" if shape == "seed002" else "device"
    return [site_device(rng, index, f"sim-{prefix}-{index + 1:03d}") for index in range(count)]


def site_device(rng: random.Random, index: int, device_id: str) -> Device:
    """A device at the site (within ~5 km) with a drawn type and firmware; the simulator and the Locust
    users both build theirs here, so the two describe devices alike."""
    return Device(
        index=index,
        device_id=device_id,
        device_type=rng.choice(DEVICE_TYPES),
        latitude=round(SITE_LATITUDE + rng.uniform(-0.05, 0.05), 6),
        longitude=round(SITE_LONGITUDE + rng.uniform(-0.05, 0.05), 6),
        firmware_version=rng.choice(FIRMWARE_VERSIONS),
    )


def device_rng(seed: int, device_index: int) -> random.Random:
    """Each device draws from its own stream, so its values do not depend on how tasks interleave."""
    return random.Random(f"{seed}:device:{device_index}")


def draw_value(rng: random.Random, profile: MetricProfile, spike: bool) -> float:
    if spike:
        value = rng.choice(profile.spikes) + rng.gauss(0.0, profile.stddev / 4)
    else:
        value = rng.gauss(profile.mean, profile.stddev)
    return round(profile.clip(value), profile.decimals)


def format_timestamp(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds and a `Z`, e.g. 2025-11-23T10:30:45.123456Z."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def seed002_reading(
    rng: random.Random, device: Device, tag: str, timestamp: datetime, anomaly_rate: float
) -> Generated:
    anomaly = rng.random() < anomaly_rate
    value = draw_value(rng, SEED002_PROFILES[tag], spike=anomaly)
    body = {"timestamp": format_timestamp(timestamp), "tag": tag, "value": value, "device_id": device.device_id}
    return Generated(body, anomaly)


def seed004_record(rng: random.Random, device: Device, timestamp: datetime, anomaly_rate: float) -> Generated:
    anomaly = rng.random() < anomaly_rate
    spiked_metric = rng.choice(SEED004_METRICS) if anomaly else None
    metrics = {
        name: draw_value(rng, profile, spike=name == spiked_metric) for name, profile in SEED004_PROFILES.items()
    }
    body = {
        "device_id": device.device_id,
        "device_type": device.device_type,
        **metrics,
        "latitude": device.latitude,
        "longitude": device.longitude,
        "status": "low_battery" if metrics["battery_level"] < LOW_BATTERY_PERCENT else "active",
        "firmware_version": device.firmware_version,
        "timestamp": format_timestamp(timestamp),
    }
    return Generated(body, anomaly)


def generate_item(
    shape: Shape, rng: random.Random, device: Device, *, tick: int, timestamp: datetime, anomaly_rate: float
) -> Generated:
    """The device's `tick`-th item. Seed002 devices rotate through the tags, offset per device so that
    at any moment every tag is being reported by some device."""
    if shape == "seed002":
        tag = SEED002_TAGS[(tick + device.index) % len(SEED002_TAGS)]
        return seed002_reading(rng, device, tag, timestamp, anomaly_rate)
    return seed004_record(rng, device, timestamp, anomaly_rate)


def tick_offset(device_index: int, tick: int, device_count: int, rate: float) -> float:
    """Seconds after the start at which a device emits its `tick`-th item; devices are staggered
    evenly so the load is smooth rather than arriving in bursts of `device_count`."""
    return (tick + device_index / device_count) / rate

"""The MSK event shape the archiver Lambda receives (records per topic-partition, base64 keys and
values), and the invoking base of both local event sources, which keeps the last invocations.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devstack.lambdas import Handler, LocalLambdaContext

ARCHIVER_FUNCTION = "archiver"
OUTBOX_EVENT_SOURCE_ARN = "arn:aws:kafka:local:000000000000:cluster/devstack-outbox/local"
KAFKA_EVENT_SOURCE_ARN = "arn:aws:kafka:local:000000000000:cluster/devstack-tansu/local"
# Kafka's timestampType numbers (aiokafka) as the MSK event spells them.
TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME"}
# Enough history for throughput numbers without growing forever in a long `make up`.
KEPT_INVOCATIONS = 10_000


def msk_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] = (),
    timestamp_type: str = "CREATE_TIME",
) -> dict[str, Any]:
    """One record as the MSK event source mapping delivers it (key and value base64, headers as byte lists)."""
    record: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp_ms,
        "timestampType": timestamp_type,
    }
    if key is not None:
        record["key"] = base64.b64encode(key).decode()
    if value is not None:
        record["value"] = base64.b64encode(value).decode()
    record["headers"] = [{name: list(header_value or b"")} for name, header_value in headers]
    return record


def msk_event(records: Iterable[Mapping[str, Any]], *, event_source_arn: str, bootstrap_servers: str) -> dict[str, Any]:
    """The event for a batch: records grouped under "<topic>-<partition>", in the order given."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        grouped.setdefault(f"{record['topic']}-{record['partition']}", []).append(record)
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": event_source_arn,
        "bootstrapServers": bootstrap_servers,
        "records": grouped,
    }


@dataclass(frozen=True, slots=True)
class Invocation:
    """One successful handler call: how many records it took and how long."""

    records: int
    seconds: float
    finished_at: float  # time.monotonic()
    summary: Mapping[str, Any]

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")


class InvokingHandler:
    """Calls the handler in a worker thread (it does blocking I/O) with a fresh local Lambda context."""

    def __init__(self, handler: Handler, function_name: str) -> None:
        self.handler = handler
        self.function_name = function_name
        self.invocations: deque[Invocation] = deque(maxlen=KEPT_INVOCATIONS)

    async def invoke(self, event: dict[str, Any], records: int) -> Mapping[str, Any]:
        context = LocalLambdaContext(function_name=self.function_name)
        started = time.perf_counter()
        summary = await asyncio.to_thread(self.handler, event, context)
        finished = time.monotonic()
        self.invocations.append(Invocation(records, time.perf_counter() - started, finished, summary))
        return summary

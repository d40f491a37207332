"""The fault drills' stack: the full local profile (PostgreSQL or a failover pair, moto S3, tansu, two app
processes behind HAProxy, the local archiver), and the dead letters its app processes report.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import boto3
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.local_resources import ARCHIVER_WINDOW_SECONDS, LOCAL_AWS, LOCAL_BUCKET, LOCAL_TOPIC
from devstack.moto_s3 import MotoServer
from devstack.postgres import PostgresServer
from devstack.processes import free_port, stop
from devstack.tansu import TansuBroker, s3_storage_env
from loadtests.drills.failover_cluster import ReplicatedDatabase
from loadtests.harness.app_processes import EXIT_TIMEOUT, start_app, wait_ready
from loadtests.harness.haproxy import HAProxy, ensure_haproxy

LETTER_LINE = b"dead letter written:"  # app.main logs one such line per dead-letter object
BROKER_BUCKET = "tansu"
TOPIC_PARTITIONS = 3
# The two app processes keep HAProxy's server names from the blue/green drill.
APPS = ("blue", "green")


class FullStack:
    """The full local profile behind HAProxy; every process it starts is stopped by `close()`."""

    def __init__(self, workdir: Path, durable_broker: bool, replicated_database: bool = False) -> None:
        self.workdir = workdir
        self.durable_broker = durable_broker
        self.replicated_database = replicated_database
        self.cleanup = ExitStack()
        self.notes: dict[str, int] = {}  # what a fault observed (failover: stale connections)

    def start(self) -> FullStack:
        binary = ensure_haproxy()
        self.s3 = MotoServer().start()
        self.cleanup.callback(self.s3.stop)
        self.s3_client = boto3.client(
            "s3", endpoint_url=self.s3.endpoint_url, region_name=LOCAL_AWS["AWS_DEFAULT_REGION"],
            aws_access_key_id=LOCAL_AWS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=LOCAL_AWS["AWS_SECRET_ACCESS_KEY"])
        for bucket in (LOCAL_BUCKET, BROKER_BUCKET):
            self.s3_client.create_bucket(Bucket=bucket, CreateBucketConfiguration={
                "LocationConstraint": LOCAL_AWS["AWS_DEFAULT_REGION"]})
        # Its own mkdtemp: the postgres user must reach it. The failover drill's database is a replicated pair.
        self.postgres = ReplicatedDatabase(binary, self.workdir).start() if self.replicated_database \
            else PostgresServer().start()
        self.cleanup.callback(self.postgres.destroy)
        storage = {"storage": f"s3://{BROKER_BUCKET}/", "storage_env": s3_storage_env(self.s3.endpoint_url)} \
            if self.durable_broker else {}
        self.broker = TansuBroker(log_path=self.workdir / "tansu.log", **storage).start()
        self.cleanup.callback(self.broker.stop)
        asyncio.run(create_topic(self.broker.bootstrap))
        self.app_env = {"SENSOR_KAFKA_BOOTSTRAP": self.broker.bootstrap, "SENSOR_KAFKA_TOPIC": LOCAL_TOPIC,
                        **LOCAL_AWS}
        self.ports = {name: free_port() for name in APPS}
        self.apps = {name: self.start_app(name) for name in APPS}
        self.cleanup.callback(lambda: [stop(process, timeout=EXIT_TIMEOUT) for process in self.apps.values()])
        for name in APPS:
            wait_ready(self.ports[name], self.apps[name])
        self.proxy = HAProxy(binary, self.workdir, *self.ports.values(), green_enabled=True,
                             retry_on="conn-failure empty-response", failover=True, log_requests=True)
        self.cleanup.callback(self.proxy.stop)
        for name in APPS:
            self.proxy.wait_for(name, lambda row: row["status"] == "UP", "UP", timeout=15)
        self.pipeline = self.start_pipeline()
        self.cleanup.callback(stop, self.pipeline, timeout=30)
        return self

    def start_app(self, name: str) -> subprocess.Popen:
        return start_app(name, self.ports[name], self.postgres.url, self.workdir, extra_env=self.app_env)

    def start_pipeline(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "devstack.pipeline", "kafka", "--bootstrap", self.broker.bootstrap,
                   "--topic", LOCAL_TOPIC, "--group", "archiver", "--bucket", LOCAL_BUCKET,
                   "--s3-endpoint", self.s3.endpoint_url, "--batching-window-seconds", ARCHIVER_WINDOW_SECONDS]
        return subprocess.Popen(command, env={**os.environ, **LOCAL_AWS},
                                stdout=open(self.workdir / "archiver.log", "ab"), stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    def close(self) -> None:
        self.cleanup.close()


async def create_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(LOCAL_TOPIC, num_partitions=TOPIC_PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()


def letters_written(workdir: Path) -> dict[str, int]:
    """Dead-letter objects each app process has written so far (its log's one line per letter)."""
    counts = {}
    for name in APPS:
        log = workdir / f"{name}.log"
        counts[name] = log.read_bytes().count(LETTER_LINE) if log.exists() else 0
    return counts

"""`make up`: the platform running locally, stopped cleanly with Ctrl-C.

    python -m devstack [--profile embedded|full] [--port 8000] [--no-simulator] [--no-locust]

embedded (default): the app on a SQLite file under var/, dead letters in var/dead-letter/, no
broker (outbox rows are kept in the database until the local pipeline drains them).
full: the same code on a PostgreSQL cluster under var/pg/ (run as the `postgres` user), the tansu
Kafka broker (the outbox relay publishes to it), moto's S3 endpoint and a redis-server holding the
shared rate-limit buckets and anomaly windows (ElastiCache for Valkey in AWS).

Both run the archiver Lambda's handler locally (devstack.pipeline): embedded drains the outbox
straight into it with the data lake in var/datalake/; full consumes the topic into the moto bucket.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

from devstack.aws_environment import MOTO_ECS_ENVIRONMENT, seed_for_make_up
from devstack.leftovers import PortTaken, record_pid, start_or_reuse_postgres, stop_leftover
from devstack.local_resources import ARCHIVER_WINDOW_SECONDS, LOCAL_AWS, LOCAL_BUCKET, LOCAL_TOPIC
from devstack.moto_s3 import MotoServer
from devstack.postgres import PostgresServer
from devstack.processes import stop, wait_for_port
from devstack.redis import RedisServer
from devstack.tansu import TansuBroker

VAR = Path("var")
FULL_PROFILE_PG_PORT = 55432
DEV_TOKEN_TTL_SECONDS = 12 * 3600
LOCUST_UI_PORT = 8089
# The dev token (var/dev-token, for the README's curl examples) belongs to the `dev` client: its own bucket,
# apart from the simulator's. The dashboard is signed into with its form; no token is printed in a URL.
DEV_CLIENT = ("dev", "dev-local-secret")
DASHBOARD_SIGN_IN = "dashboard / dashboard-local-secret"
# Pids of what the full profile starts besides PostgreSQL, so the next run can stop what a killed run left.
LEFTOVER_PIDFILES = {"broker": (VAR / "tansu.pid", "tansu"), "S3 endpoint": (VAR / "moto.pid", "moto_server")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("embedded", "full"), default="embedded")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--no-simulator", action="store_true", help="serve the API only")
    parser.add_argument("--no-locust", action="store_true", help="do not start the Locust web UI")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")

    VAR.mkdir(exist_ok=True)
    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    stack = Stack()
    try:
        try:
            env, lines = stack.start_services(args.profile)
        except PortTaken as error:
            print(f"make up: {error}", file=sys.stderr)
            return 1
        if args.profile == "full":  # `make verify ENV=local` checks this profile like a deployed environment
            lines.append(seed_for_make_up(env, app_port=args.port, lake_bucket=LOCAL_BUCKET, var_dir=VAR))
        app_process = stack.start_app(env, args.port)
        base = f"http://127.0.0.1:{args.port}"
        (VAR / "dev-token").write_text(_token(base, *DEV_CLIENT) + "\n")
        if not args.no_simulator:
            stack.start_simulator(env, base)
            lines.append(f"Simulator   5 devices x 1 reading/s, 5% anomalies (log: {VAR / 'simulator.log'})")
        if not args.no_locust:
            stack.start_locust_ui(env, base)
            lines.append(f"Locust UI   http://127.0.0.1:{LOCUST_UI_PORT}  (load profiles under custom parameters; "
                         f"results/; log: {VAR / 'locust.log'})")
        pipeline_process, pipeline_line = stack.start_pipeline(args.profile, env)
        lines.append(pipeline_line)
        _print_banner(args.profile, base, lines)
        while not stopping:
            if app_process.poll() is not None:
                print(f"the app exited with {app_process.returncode}; see {VAR / 'app.log'}", file=sys.stderr)
                return 1
            if pipeline_process.poll() is not None:
                print(f"the archiver pipeline exited with {pipeline_process.returncode}; see {VAR / 'archiver.log'}",
                      file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        stack.stop()


class Stack:
    """What `make up` started, stopped in reverse order."""

    def __init__(self) -> None:
        self.services: list = []
        self.processes: list[subprocess.Popen] = []

    def start_services(self, profile: str) -> tuple[dict[str, str], list[str]]:
        # APP_ENV has no default (fail closed): the local stack says what it is.
        env = {**os.environ, "APP_ENV": "local", "SENSOR_TOKEN_TTL_SECONDS": str(DEV_TOKEN_TTL_SECONDS),
               "SENSOR_DEAD_LETTER_DIR": str(VAR / "dead-letter")}
        lines = []
        if profile == "full":
            for what, (pidfile, marker) in LEFTOVER_PIDFILES.items():
                if message := stop_leftover(pidfile, marker, what):
                    print(f"make up: {message}", flush=True)
            # TLS with the local CA: the app connects with verify-full, the same code path as to RDS.
            postgres = PostgresServer(data_root=(VAR / "pg").resolve(), port=FULL_PROFILE_PG_PORT, tls=True)
            if message := start_or_reuse_postgres(postgres):
                print(f"make up: {message}", flush=True)
            self.services.append(postgres)
            broker = TansuBroker(log_path=VAR / "tansu.log").start()
            record_pid(LEFTOVER_PIDFILES["broker"][0], broker.process.pid)
            self.services.append(broker)
            s3 = MotoServer(environment=MOTO_ECS_ENVIRONMENT).start()
            record_pid(LEFTOVER_PIDFILES["S3 endpoint"][0], s3.process.pid)
            self.services.append(s3)
            _create_bucket(s3.endpoint_url)
            state_store = RedisServer(log_path=VAR / "redis.log").start()
            self.services.append(state_store)
            env.update(SENSOR_DATABASE_URL=postgres.url, SENSOR_DB_SSLMODE="verify-full",
                       SENSOR_DB_SSL_ROOT_CERT=str(postgres.ca_file), SENSOR_KAFKA_BOOTSTRAP=broker.bootstrap,
                       SENSOR_S3_ENDPOINT_URL=s3.endpoint_url, SENSOR_STATE_STORE_URL=state_store.url, **LOCAL_AWS)
            lines += [f"PostgreSQL  {postgres.url}  (TLS verify-full against {postgres.ca_file}; data in {postgres.data_dir})",
                      f"Kafka       {broker.bootstrap}  (tansu, in memory), topic sensor-readings",
                      f"S3 (moto)   {s3.endpoint_url}  bucket {LOCAL_BUCKET}",
                      f"State store {state_store.url}  (redis-server: shared rate limits, anomaly windows)"]
        else:
            lines.append(f"Database    {VAR / 'sensors.db'} (SQLite)")
        lines.append(f"Dead letters {VAR / 'dead-letter'}/ (replayed into the database automatically)")
        return env, lines

    def start_app(self, env: dict[str, str], port: int) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
             "--backlog", "2048", "--no-access-log"],
            env=env, stdout=open(VAR / "app.log", "ab"), stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        wait_for_port(port, timeout=60, process=process)
        return process

    def start_simulator(self, env: dict[str, str], base: str) -> None:
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "loadtests.simulator", "--url", base, "--devices", "5", "--rate", "1",
             "--spool", str(VAR / "simulator-spool.jsonl")],
            env=env, stdout=open(VAR / "simulator.log", "ab"), stderr=subprocess.STDOUT,
        ))

    def start_locust_ui(self, env: dict[str, str], base: str) -> None:
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "loadtests.locust.run", "--ui", "--host", base, "--web-port", str(LOCUST_UI_PORT)],
            env=env, stdout=open(VAR / "locust.log", "ab"), stderr=subprocess.STDOUT,
        ))

    # --- local archiver pipeline (devstack.pipeline) ---------------------------------------------

    def start_pipeline(self, profile: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
        """The archiver Lambda's handler fed locally: from the outbox (embedded) or the topic (full).

        Returns the process (stopped by SIGINT with the others) and the banner line saying where the
        Parquet files land.
        """
        if profile == "full":
            source = ["kafka", "--bootstrap", env["SENSOR_KAFKA_BOOTSTRAP"], "--topic", LOCAL_TOPIC,
                      "--group", "archiver", "--bucket", LOCAL_BUCKET, "--s3-endpoint", env["SENSOR_S3_ENDPOINT_URL"],
                      "--batching-window-seconds", ARCHIVER_WINDOW_SECONDS]
            line = (f"Data lake   s3://{LOCAL_BUCKET}/raw/year=.../*.parquet on {env['SENSOR_S3_ENDPOINT_URL']} "
                    f"(archiver consumes {LOCAL_TOPIC}; log: {VAR / 'archiver.log'})")
        else:
            database_url = env.get("SENSOR_DATABASE_URL", f"sqlite+aiosqlite:///{VAR / 'sensors.db'}")
            lake_dir = VAR / "datalake"
            source = ["outbox", "--database-url", database_url, "--lake-dir", str(lake_dir), "--topic", LOCAL_TOPIC,
                      "--idle-seconds", ARCHIVER_WINDOW_SECONDS]
            line = (f"Data lake   {lake_dir}/raw/year=.../*.parquet (archiver drains the outbox; "
                    f"log: {VAR / 'archiver.log'})")
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.pipeline", *source],
            env=env, stdout=open(VAR / "archiver.log", "ab"), stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process, line

    def stop(self) -> None:
        """Upstream first, one at a time: the simulator and Locust stop sending (the simulator spools), the app drains
        and flushes its last group commit, then the archiver takes what the app committed last."""
        print("\nstopping ...", flush=True)
        app = self.processes[0] if self.processes else None
        others = [p for p in self.processes if p is not app]
        senders = [p for p in others if any(m in p.args for m in ("loadtests.simulator", "loadtests.locust.run"))]
        pipelines = [p for p in others if p not in senders]
        for process, stop_signal in [*((p, signal.SIGINT) for p in senders), *(((app, signal.SIGTERM),) if app else ()),
                                     *((p, signal.SIGINT) for p in pipelines)]:
            if process.poll() is None:
                process.send_signal(stop_signal)
            stop(process, timeout=30)
        for service in reversed(self.services):
            service.stop()
        for pidfile, _marker in LEFTOVER_PIDFILES.values():
            pidfile.unlink(missing_ok=True)
        print("stopped.", flush=True)


def _print_banner(profile: str, base: str, lines: list[str]) -> None:
    print(f"\nSensor platform is up ({profile} profile). Ctrl-C stops everything.\n")
    print(f"  API docs    {base}/docs")
    print(f"  Dashboard   {base}/dashboard  (sign in: {DASHBOARD_SIGN_IN})")
    print(f"  Health      {base}/health")
    print(f"  Token       {VAR / 'dev-token'} (client dev: ingest+read, 100 req/s burst 200, 12 h):")
    print(f"              curl -H \"Authorization: Bearer $(cat {VAR / 'dev-token'})\" {base}/sensors/stats")
    for line in lines:
        print(f"  {line}")
    print(f"  App log     {VAR / 'app.log'}\n", flush=True)


def _token(base: str, client_id: str, client_secret: str) -> str:
    body = json.dumps({"client_id": client_id, "client_secret": client_secret}).encode()
    request = urllib.request.Request(f"{base}/auth/token", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


def _create_bucket(endpoint_url: str) -> None:
    client = boto3.client("s3", endpoint_url=endpoint_url, region_name=LOCAL_AWS["AWS_DEFAULT_REGION"],
                          aws_access_key_id="local", aws_secret_access_key="local")
    client.create_bucket(Bucket=LOCAL_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})


if __name__ == "__main__":
    sys.exit(main())

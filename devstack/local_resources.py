"""Names and placeholder credentials of the local stand-ins (moto S3, the tansu topic, the local archiver).

One home for what `make up`, the fault drills, the benchmarks and the tests must agree on, so none of
them imports constants from the `python -m devstack` entry point.
"""

from __future__ import annotations

# APP_ENV of every app process the local tools start (make exports it too; a tool run by hand needs it).
LOCAL_APP_ENV = {"APP_ENV": "local"}
LOCAL_BUCKET = "sensor-local-datalake"
LOCAL_TOPIC = "sensor-readings"
# How long the local archiver gathers readings per invocation: fewer, larger Parquet files in the lake.
ARCHIVER_WINDOW_SECONDS = "2"
# moto accepts any credentials; these only keep boto3 from looking for real ones.
LOCAL_AWS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "eu-west-1"}

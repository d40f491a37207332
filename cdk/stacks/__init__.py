"""Stacks split by domain, in deployment order: network, stateful data, the ingestion service, the
pipeline (archiver, catalog, read API), monitoring, and the opt-in load test. Each takes the typed
records of `cdk/props.py` from the stacks before it, never a stack."""

"""Benchmarks: the 1000-user run against a bare ASGI ceiling (`make bench`), batch ingest against COPY
(`make bench-ingest`) and dead-letter replay against live ingest (`make bench-replay`)."""

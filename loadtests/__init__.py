"""Load generation and the harnesses that measure the platform under load, one sub-package per job:

- `locust`: the Locust suite (locustfile, users, load shapes, profiles, thresholds, reports, web-UI
  results, target guard, `python -m loadtests.locust.run`); the LoadTest image runs it.
- `simulator`: the device simulator (`python -m loadtests.simulator`); its generators feed the Locust users.
- `drills`: fault drills and the blue-green drill (HAProxy, a failover cluster, a delay proxy).
- `bench`: `make bench`, `make bench-ingest`, `make bench-replay` (ceiling app, CPU accounting).
- `harness`: what drills and benchmarks share: the app processes behind HAProxy, progress lines, provenance.

The LoadTest image's build context is this directory with loadtests/.dockerignore leaving out
drills/, bench/ and harness/ (they start local PostgreSQL, tansu and HAProxy through devstack).
"""

"""Sensor simulator: generates seed-002 readings or seed-004 device records and delivers them to the
ingestion service like a well-behaved field client.

    python -m loadtests.simulator --devices 5 --rate 1 --shape seed002 --duration 60

One job per module: `generation` (pure functions of a seeded `random.Random`: device profiles, values,
injected anomalies; the Locust users draw their data from it too), `config` (the command line),
`spool` (undelivered request bodies as JSONL, replayed on the next start), `delivery` (tokens,
429/5xx/connection-error retries), `stats` (counters), `runner` (the run loop and its summaries).
Counts in the summary are items (a reading for seed002, a device record for seed004), not requests.

It lives in loadtests/ because it generates load: the LoadTest image ships it with the Locust suite,
and `make up` starts it as a separate process (`python -m loadtests.simulator`).
"""

"""What the drills and benchmarks share: app processes behind HAProxy, progress lines, provenance."""

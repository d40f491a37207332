"""The Locust suite: what the LoadTest image's master and workers run, and `make loadtest*` locally."""

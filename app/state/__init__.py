"""State shared by every task through a Valkey/Redis store: per-client leaky buckets and anomaly
windows, each read and updated atomically by a Lua script, with per-process fallbacks."""

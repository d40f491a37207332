"""Service layer: what the routers call (ingest, queries, the dashboard's live feed, dead-letter
replay); routers stay thin. A service that cannot serve right now raises `ServiceUnavailable`."""

"""Load generation against the ingestion service: the sensor simulator (`python -m loadtests.simulator`)."""

"""Logs with correlation ids, and metrics aggregated in memory and emitted as CloudWatch EMF."""

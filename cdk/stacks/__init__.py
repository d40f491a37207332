"""Stacks split by domain: network, stateful data, and the ingestion service."""

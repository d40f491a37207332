"""Transactional outbox: the producer (`producer`) and the relay that publishes committed readings
(`relay`) in the Kafka wire format of `contracts.reading`, which the archiver Lambda shares.
"""

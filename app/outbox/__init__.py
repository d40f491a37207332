"""Transactional outbox: the Kafka wire format (`messages`), the producer (`producer`) and the relay
that publishes committed readings (`relay`).

Deliberately imports nothing: the archiver Lambda imports `app.outbox.messages` alone and must not
pull in SQLAlchemy, aiokafka or boto3.
"""

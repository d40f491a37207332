"""Wire contracts between the platform's deployable units, imported by both sides of each.

`contracts.reading`: the Kafka record of one reading, written by the service's outbox relay and read
by the archiver Lambda. It lives outside both packages so neither reaches into the other, and it
imports only the standard library: the archiver bundle ships this package and nothing of `app`.
"""

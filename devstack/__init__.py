"""The local stack (`python -m devstack`, `make up`), outside the service package so no image ships it.

Local stand-ins for the AWS data services, started for `make up PROFILE=full`, tests, benchmarks and
drills: PostgreSQL (as the `postgres` user), the tansu Kafka broker, moto's S3, redis-server; the
archiver Lambda's local event sources (`pipeline`); moto-seeded AWS resources for `make verify`
(`aws_environment`); and the local names they share (`local_resources`).
"""

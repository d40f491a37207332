"""Local stand-ins for the AWS data services, started for `make up PROFILE=full`, tests,
benchmarks and drills: PostgreSQL (as the `postgres` user), the tansu Kafka broker, moto's S3."""

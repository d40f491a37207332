"""The ingestion service on ECS Fargate, one job per module: `service` composes the construct
(`IngestService`); `secrets` (token signing key, API clients), `task` (task definition, task role),
`load_balancer` (ALB, listeners, blue and green target groups), `dashboard_auth` (ALB sign-in for
/dashboard), `rollback_alarms` (what rolls a deployment back) and `scaling` (1..N tasks) each build
their part inside it, so every resource keeps its construct path and logical ID."""

"""The platform's monitoring, in two layers.

Definitions, as plain data (no CDK imports): `monitoring.catalogue.ALARMS` is the single list of
alarms: the CDK monitoring stack (`cdk/components/monitoring.py`) turns it into CloudWatch alarms,
the dashboards in `monitoring.dashboards` draw its thresholds, and `runbooks/alarms/<name>.md`
documents each entry.

Operator tools on top, which read a deployed (or synthesized) environment and import no CDK code:
`watch` (on-call terminal view), `load_test_report`, `verify` (`make verify`) and `cost` (`make cost`,
which prices the templates `make synth` wrote). They find an environment through `environments/`.
"""

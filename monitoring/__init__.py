"""The platform's alarm catalogue and dashboards, as plain data (no CDK imports).

`monitoring.catalogue.ALARMS` is the single list of alarms: the CDK monitoring stack
(`cdk/components/monitoring.py`) turns it into CloudWatch alarms, the dashboards in
`monitoring.dashboards` draw its thresholds, and `runbooks/alarms/<name>.md` documents each entry.
"""

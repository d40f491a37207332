"""What an environment is, below every layer that deploys or operates one.

`environments.config` parses an environment's `cdk.json` block into a typed, frozen object;
`environments.naming` spells every `sensor-<env>…` resource name and `Sensor-<env>-<Domain>` stack
name; `environments.credentials` checks AWS credentials against an environment. The CDK app, the
monitoring definitions and the operator tools all import from here, and this package imports none
of them (pydantic and boto3 only).
"""

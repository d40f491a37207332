"""The CDK app (`python -m cdk.app`): stacks/ composed of components/, wired in app.py, plus the deploy
tools that drive the CDK CLI (preflight, deploy_plan, plan). Sits above `environments/` and the
monitoring definitions, which it imports; nothing below imports it."""

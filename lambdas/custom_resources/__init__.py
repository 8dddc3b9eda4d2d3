"""CloudFormation custom resource handlers (run by the CDK Provider framework during deploys)."""

"""The CDK Provider framework around one of our custom-resource handlers, the same way for each: its log group kept a
month, and the two cdk-nag findings the framework's own function always raises acknowledged with their reason."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.nag import acknowledge, resource_finding


def provider_for(scope: Construct, handler: lambda_.IFunction) -> cr.Provider:
    provider = cr.Provider(
        scope,
        "Provider",
        on_event_handler=handler,
        log_group=logs.LogGroup(
            scope, "ProviderLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        ),
    )
    acknowledge(
        provider,
        "AwsSolutions-IAM4",
        "The CDK Provider framework's own function uses the AWS managed basic-execution policy (CDK-internal).",
        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    )
    acknowledge(
        provider,
        "AwsSolutions-IAM5",
        "The CDK Provider framework may invoke any version of our handler (function ARN + ':*'), nothing else.",
        resource_finding(scope, f"{handler.function_arn}:*"),
    )
    return provider

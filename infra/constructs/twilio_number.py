"""The deploy wires the Twilio number (context `twilioPhoneNumber`) to the stack: a custom resource, run by the CDK
Provider framework, whose handler is `lambdas/custom_resources/twilio_number.py` (it restores the number on delete).

The handler reads the Twilio credentials from the stack's secrets, so they must hold real values first: deploy once
without `twilioPhoneNumber`, fill the secrets, deploy again with it (infra/DEPLOY.md).
"""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.constants import CUSTOM_RESOURCE_HANDLER
from infra.constructs.functions import LambdaPackage
from infra.constructs.secrets import Secrets
from infra.nag import acknowledge, resource_finding
from infra.policies import secrets_statement

HANDLER_TIMEOUT = Duration.seconds(60)


class TwilioNumberWiring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: LambdaPackage,
        secrets: Secrets,
        phone_number: str,
        voice_url: str,
        fallback_url: str,
        status_callback_url: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = package.function(
            self,
            "Handler",
            handler=CUSTOM_RESOURCE_HANDLER,
            description="Custom resource: points the Twilio number at this stack, restores it on delete",
            environment={
                "TWILIO_ACCOUNT_SID_ARN": secrets.twilio_account_sid.secret_arn,
                "TWILIO_AUTH_TOKEN_ARN": secrets.twilio_auth_token.secret_arn,
            },
            timeout=HANDLER_TIMEOUT,
            memory_mib=256,
            statements=[secrets_statement([secrets.twilio_account_sid, secrets.twilio_auth_token])],
        )
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.handler,
            log_group=logs.LogGroup(
                self, "ProviderLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
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
            resource_finding(self, f"{self.handler.function_arn}:*"),
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type="Custom::TwilioNumberWiring",
            properties={
                "PhoneNumber": phone_number,
                "VoiceUrl": voice_url,
                "FallbackUrl": fallback_url,
                "StatusCallbackUrl": status_callback_url,
            },
        )

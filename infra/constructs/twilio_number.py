"""The deploy wires every number of every receptionist profile to the stack: one custom resource per number, run by
the CDK Provider framework, whose handler is `lambdas/custom_resources/twilio_number.py` (it remembers each number's
previous webhooks and restores them when the number's resource is removed: the number left a profile, or the stack
was deleted).

The handler reads the Twilio credentials from the stack's secrets, so they must hold real values first: the first
deploy runs with `-c wireNumbers=false`, the secrets are filled, the next deploy wires the numbers (infra/DEPLOY.md;
`make deploy` does it all).
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import CustomResource, Duration
from constructs import Construct

from infra.constants import CUSTOM_RESOURCE_HANDLER
from infra.constructs.custom_resource import provider_for
from infra.constructs.functions import LambdaPackage
from infra.constructs.secrets import Secrets
from infra.policies import secrets_statement

HANDLER_TIMEOUT = Duration.seconds(60)


def number_resource_id(number: str) -> str:
    """One construct ID per number, whatever profile lists it: moving a number to another profile keeps its resource
    (a new resource for the same number would remember the stack's own webhooks as the ones to restore)."""
    return f"Number{number.removeprefix('+')}"


class TwilioNumberWiring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: LambdaPackage,
        secrets: Secrets,
        numbers: Iterable[str],
        voice_url: str,
        fallback_url: str,
        status_callback_url: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = package.function(
            self,
            "Handler",
            handler=CUSTOM_RESOURCE_HANDLER,
            description="Custom resource: points a Twilio number at this stack, restores it on delete",
            environment={
                "TWILIO_ACCOUNT_SID_ARN": secrets.twilio_account_sid.secret_arn,
                "TWILIO_AUTH_TOKEN_ARN": secrets.twilio_auth_token.secret_arn,
            },
            timeout=HANDLER_TIMEOUT,
            memory_mib=256,
            statements=[secrets_statement([secrets.twilio_account_sid, secrets.twilio_auth_token])],
        )
        provider = provider_for(self, self.handler)
        self.resources = {
            number: CustomResource(
                self,
                number_resource_id(number),
                service_token=provider.service_token,
                resource_type="Custom::TwilioNumberWiring",
                properties={
                    "PhoneNumber": number,
                    "VoiceUrl": voice_url,
                    "FallbackUrl": fallback_url,
                    "StatusCallbackUrl": status_callback_url,
                },
            )
            for number in sorted(numbers)
        }

"""The deploy publishes the receptionist profiles into the call table: a custom resource, run by the CDK Provider
framework, whose handler is `lambdas/custom_resources/receptionist_profiles.py` (`ReceptionistProfiles.publish`).

Its properties are the profiles' documents (`PublishedProfile.document()`, each with its content version), so a
changed profile changes the resource and `cdk deploy` publishes it; unchanged profiles leave it alone. The handler may
write and read the profiles' items only (`dynamodb:LeadingKeys`), nothing else of the table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import CustomResource, Duration
from constructs import Construct

from callcore.profiles import PublishedProfile
from infra.constants import LAMBDA_BASE_ENVIRONMENT, PROFILES_PUBLISHER_HANDLER
from infra.constructs.custom_resource import provider_for
from infra.constructs.functions import LambdaPackage
from infra.constructs.storage import Storage
from infra.policies import PROFILE_PUBLISH_ACTIONS, profile_items_statement, table_key_statement

HANDLER_TIMEOUT = Duration.seconds(60)


class ReceptionistProfilesPublisher(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: LambdaPackage,
        storage: Storage,
        profiles: Sequence[PublishedProfile],
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = package.function(
            self,
            "Handler",
            handler=PROFILES_PUBLISHER_HANDLER,
            description="Custom resource: publishes the receptionist profiles into the call table",
            environment={**LAMBDA_BASE_ENVIRONMENT, "CALLS_TABLE": storage.table.table_name},
            timeout=HANDLER_TIMEOUT,
            memory_mib=256,
            statements=[
                profile_items_statement(storage.table, PROFILE_PUBLISH_ACTIONS, sid="ProfileItems"),
                table_key_statement(storage.key),
            ],
        )
        provider = provider_for(self, self.handler)
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type="Custom::ReceptionistProfiles",
            # JSON text, not nested properties: CloudFormation would hand every number and boolean back as a string.
            properties={"Profiles": [json.dumps(p.document(), sort_keys=True) for p in profiles]},
        )

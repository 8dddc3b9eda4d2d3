"""The REST API: Twilio's webhooks and the call-control routes, one Lambda and one least-privilege role per route.

Twilio routes are open at API Gateway (Twilio cannot sign with SigV4); each handler checks X-Twilio-Signature, a
missing header included (403 + the RejectedSignatures metric). Call-control routes (`/calls...`) need AWS_IAM
(SigV4): the relay's task role may invoke exactly the transfer and hang-up routes.

Each route has its own throttle (`Route.throttle`), and a WAF web ACL limits each IP address (`ApiFirewall`), so a
flood on one route, or from one address, cannot starve Twilio's status callbacks. A 4xx answered to a status callback
is counted (metric StatusCallback4xx, from the access log): Twilio does not retry it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constants import (
    API_STAGE,
    API_THROTTLE_BURST,
    API_THROTTLE_RATE_PER_SECOND,
    CALL_CONTROL_5XX_METRIC,
    ROUTES,
    STATUS_CALLBACK_4XX_METRIC,
    TWILIO_STATUS_PATH,
    Route,
    RouteAuth,
)
from infra.constructs.api_firewall import ApiFirewall
from infra.constructs.functions import LambdaPackage
from infra.constructs.secrets import Secrets
from infra.constructs.storage import Storage
from infra.nag import acknowledge
from infra.policies import acknowledge_archive_objects, archive_statements, secrets_statement, table_statements

# One JSON line per request. `status` is unquoted so metric filters can compare it as a number. No bodies and no
# data tracing: Twilio's form posts carry caller numbers.
ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","requestTime":"$context.requestTime","ip":"$context.identity.sourceIp",'
    '"httpMethod":"$context.httpMethod","resourcePath":"$context.resourcePath","status":$context.status,'
    '"responseLength":"$context.responseLength","latencyMs":"$context.responseLatency",'
    '"integrationLatencyMs":"$context.integrationLatency","integrationError":"$context.integrationErrorMessage",'
    '"error":"$context.error.message","waf":"$context.wafResponseCode","caller":"$context.identity.userArn"}'
)


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: LambdaPackage,
        storage: Storage,
        secrets: Secrets,
        environment: Mapping[str, str],
        metrics_namespace: str,
        waf_requests_per_ip: int | None,
    ) -> None:
        """`waf_requests_per_ip`: the WAF's per-IP limit (per 5 minutes); None leaves the WAF out."""
        super().__init__(scope, construct_id)
        self._metrics_namespace = metrics_namespace
        self._package = package
        self._storage = storage
        self._secrets = secrets
        self._environment = dict(environment)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.rest_api = self._build_rest_api()
        # Parameters: call-control routes need their path parameter. Bodies are validated by the handlers (form posts
        # from Twilio, JSON from the relay); no API Gateway models are attached. Twilio routes get no validator: see
        # `_add_method`.
        self._validator = self.rest_api.add_request_validator(
            "RequestValidator", validate_request_parameters=True, validate_request_body=True
        )
        self.functions: dict[str, lambda_.Function] = {route.construct_id: self._build_route(route) for route in ROUTES}
        self._build_access_log_metrics()
        self.firewall: ApiFirewall | None = None
        if waf_requests_per_ip is None:
            acknowledge(
                self.rest_api,
                "AwsSolutions-APIG3",
                "The deployment turned the WAF off (context apiWaf=false); every route keeps its own throttle and its "
                "signature or SigV4 check.",
            )
        else:
            self.firewall = ApiFirewall(
                self,
                "Firewall",
                stage=self.rest_api.deployment_stage,
                requests_per_ip=waf_requests_per_ip,
                metric_prefix=metrics_namespace,
            )

    @property
    def base_url(self) -> str:
        """`https://<id>.execute-api.<region>.amazonaws.com/<stage>` without the trailing slash."""
        return self.rest_api.url_for_path("/").rstrip("/")

    def url_for(self, path: str) -> str:
        return self.rest_api.url_for_path(path)

    def execute_api_arn(self, route: Route, method: str) -> str:
        path = route.path.replace("{callSid}", "*")
        return self.rest_api.arn_for_execute_api(method, path, API_STAGE)

    # ---- builders ----------------------------------------------------------------------------------------------------
    def _build_rest_api(self) -> apigateway.RestApi:
        rest_api = apigateway.RestApi(
            self,
            "RestApi",
            description="Phone voice agent: Twilio webhooks and call control",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            # Execution logs need the account-level CloudWatch role (one per account and region).
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigateway.StageOptions(
                stage_name=API_STAGE,
                throttling_rate_limit=API_THROTTLE_RATE_PER_SECOND,
                throttling_burst_limit=API_THROTTLE_BURST,
                # A method's settings replace the stage's, so each repeats the stage's logging and metrics choices.
                method_options={
                    f"{route.path}/{method}": apigateway.MethodDeploymentOptions(
                        throttling_rate_limit=route.throttle.rate_per_second,
                        throttling_burst_limit=route.throttle.burst,
                        logging_level=apigateway.MethodLoggingLevel.ERROR,
                        data_trace_enabled=False,
                        metrics_enabled=False,
                    )
                    for route in ROUTES
                    for method in route.methods
                },
                access_log_destination=apigateway.LogGroupLogDestination(self.access_logs),
                access_log_format=apigateway.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                tracing_enabled=True,
                # Per-method metrics are billed as custom metrics; the stage-wide ones (4XX, 5XX, Latency) are free,
                # and the call-control 5xx alarm uses the access-log metric filter below.
                metrics_enabled=False,
            ),
        )
        acknowledge(
            rest_api,
            "AwsSolutions-IAM4",
            "API Gateway's account-level logging role uses the AWS managed push-to-CloudWatch policy by design.",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
        )
        return rest_api

    def _build_route(self, route: Route) -> lambda_.Function:
        secrets = self._secrets.lambda_settings
        environment = {**self._environment, **route.environment}
        if route.mints_stream_tokens:
            secrets = (*secrets, self._secrets.stream_token_secret)
            environment["STREAM_TOKEN_SECRET_ARN"] = self._secrets.stream_token_secret.secret_arn
        statements = [
            *table_statements(self._storage.table, self._storage.key, route.table_actions),
            # What every handler's settings need (auth token, account SID, caller-hash secret), the stream-token
            # secret only where tokens are minted; none of them can read the OpenAI key.
            secrets_statement(secrets),
        ]
        bucket = self._storage.transcripts_bucket
        if route.writes_archive:
            statements.extend(archive_statements(bucket, self._storage.key, read=True))
        function = self._package.function(
            self,
            route.construct_id,
            handler=route.handler,
            description=route.description,
            environment=environment,
            timeout=Duration.seconds(route.timeout_seconds),
            memory_mib=route.memory_mib,
            statements=statements,
        )
        if route.writes_archive and function.role is not None:
            acknowledge_archive_objects(function.role, bucket)
        integration = apigateway.LambdaIntegration(function, allow_test_invoke=False)
        for method in route.methods:
            self._add_method(route, method, integration)
        return function

    def _add_method(self, route: Route, method: str, integration: apigateway.LambdaIntegration) -> None:
        resource = self.rest_api.root.resource_for_path(route.path)
        if route.auth is RouteAuth.AWS_IAM:
            added = resource.add_method(
                method,
                integration,
                authorization_type=apigateway.AuthorizationType.IAM,
                request_validator=self._validator,
                request_parameters={"method.request.path.callSid": True} if "{callSid}" in route.path else None,
            )
            acknowledge(
                added,
                "AwsSolutions-COG4",
                "Call control is machine to machine: the relay's task role signs with SigV4 (AWS_IAM "
                "authorization); there are no end users to put in a Cognito pool.",
            )
            return
        # No gateway check of X-Twilio-Signature, not even its presence: a request validator would answer a missing
        # header with a gateway 400 the Lambda never sees, so no RejectedSignatures metric (the signature alarm's
        # input) and a misleading "Bad Request" in Twilio's debugger. The handler answers 403 and counts it, whether
        # the header is missing (a proxy stripped it, a misconfigured webhook) or wrong. An unsigned request costs one
        # short invocation; the stage throttle bounds a flood of them.
        added = resource.add_method(method, integration, authorization_type=apigateway.AuthorizationType.NONE)
        reason = (
            "Twilio webhooks cannot carry SigV4 or Cognito tokens; the handler validates X-Twilio-Signature "
            "(HMAC-SHA1 with the auth token over URL and form) and answers 403 before reading or writing anything."
        )
        acknowledge(added, "AwsSolutions-APIG4", reason)
        acknowledge(added, "AwsSolutions-COG4", reason)

    def _build_access_log_metrics(self) -> None:
        """Metrics counted from the access log (per-method API metrics would be billed as custom metrics)."""
        logs.MetricFilter(
            self,
            "CallControl5xxFilter",
            log_group=self.access_logs,
            metric_namespace=self._metrics_namespace,
            metric_name=CALL_CONTROL_5XX_METRIC,
            filter_pattern=logs.FilterPattern.all(
                logs.FilterPattern.string_value("$.resourcePath", "=", "/calls*"),
                logs.FilterPattern.number_value("$.status", ">=", 500),
            ),
            metric_value="1",
        )
        logs.MetricFilter(
            self,
            "StatusCallback4xxFilter",
            log_group=self.access_logs,
            metric_namespace=self._metrics_namespace,
            metric_name=STATUS_CALLBACK_4XX_METRIC,
            filter_pattern=logs.FilterPattern.all(
                logs.FilterPattern.string_value("$.resourcePath", "=", TWILIO_STATUS_PATH),
                logs.FilterPattern.number_value("$.status", ">=", 400),
                logs.FilterPattern.number_value("$.status", "<", 500),
            ),
            metric_value="1",
        )

"""The dashboard and the alarms that come with the stack.

Metric names and dimensions are the contracts in infra.constants (the relay's EMF metrics, the Lambdas' Powertools
metrics); AWS service metrics (Lambda, API Gateway, ALB, ECS) come from the constructs themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from callcore.metric_names import LambdaMetric, RelayMetric
from infra.constants import (
    CALL_CONTROL_5XX_METRIC,
    LAMBDA_METRIC_DIMENSION,
    RELAY_METRIC_DIMENSION,
    STATUS_CALLBACK_4XX_METRIC,
)
from infra.constructs.api import Api
from infra.constructs.relay import RelayService, active_calls_metric
from infra.constructs.relay_endpoint import RelayEndpoint
from infra.settings import DeploySettings

FIVE_MINUTES = Duration.minutes(5)
ONE_MINUTE = Duration.minutes(1)
ONE_DAY = Duration.days(1)  # CloudWatch aligns day-long periods to UTC days
MODEL_ERRORS_THRESHOLD = 3
# A few refused status callbacks in 5 minutes: a signature problem (wrong auth token, a proxy rewriting the URL), a
# throttle or the WAF blocking Twilio. One forged request now and then stays below it.
STATUS_CALLBACK_4XX_THRESHOLD = 3
WIDGET_WIDTH = 8


def relay_metric(
    namespace: str, name: RelayMetric, statistic: str = cloudwatch.Stats.SUM, label: str | None = None
) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map=RELAY_METRIC_DIMENSION,
        statistic=statistic,
        period=FIVE_MINUTES,
        label=label,  # alarms take unlabelled metrics (a label turns them into metric-math alarms)
    )


def relay_line(namespace: str, name: RelayMetric, statistic: str = cloudwatch.Stats.SUM) -> cloudwatch.Metric:
    """A dashboard line: labelled with its statistic so p50/p95/p99 lines tell apart."""
    return relay_metric(namespace, name, statistic, label=f"{name} ({statistic})")


def lambda_metric(namespace: str, name: LambdaMetric, *, labelled: bool = True) -> cloudwatch.Metric:
    """A dashboard line (labelled) or an alarm's metric (unlabelled: a label turns it into a metric-math alarm)."""
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map=LAMBDA_METRIC_DIMENSION,
        statistic=cloudwatch.Stats.SUM,
        period=FIVE_MINUTES,
        label=name if labelled else None,
    )


def access_log_metric(namespace: str, name: str, *, labelled: bool = False) -> cloudwatch.Metric:
    """A metric the API's access-log filters count (infra/constructs/api.py), summed per 5 minutes."""
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        statistic=cloudwatch.Stats.SUM,
        period=FIVE_MINUTES,
        label=name if labelled else None,
    )


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        api: Api,
        endpoint: RelayEndpoint,
        relay: RelayService,
        scheduled: Mapping[str, lambda_.IFunction],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self._scheduled = dict(scheduled)
        self._settings = settings
        self._namespace = settings.metrics_namespace
        self._api = api
        self._endpoint = endpoint
        self._relay = relay
        self.topic = self._build_topic(key)
        self.alarms: list[cloudwatch.Alarm] = []
        self._build_alarms()
        self.dashboard = self._build_dashboard()

    @property
    def dashboard_url(self) -> str:
        return (
            f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
            f"#dashboards:name={self.dashboard.dashboard_name}"
        )

    # ---- alarms ------------------------------------------------------------------------------------------------------
    def _build_topic(self, key: kms.IKey) -> sns.Topic:
        topic = sns.Topic(self, "AlarmTopic", display_name="Phone voice agent alarms", master_key=key, enforce_ssl=True)
        # CloudWatch publishes alarm notifications into the encrypted topic, so it needs the key (key policy).
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToEncryptedTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        if self._settings.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(self._settings.alarm_email))
        return topic

    def _alarm(
        self,
        construct_id: str,
        *,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods: int = 1,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            treat_missing_data=missing,
            alarm_description=description,
        )
        action = cloudwatch_actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)
        return alarm

    def _build_alarms(self) -> None:
        api_failure = "an unhandled error: Twilio got a 5xx or a call-control request failed"
        sweep_failure = "ended calls may keep their agent seats"
        for name, function, consequence in [
            *((name, function, api_failure) for name, function in self._api.functions.items()),
            *((name, function, sweep_failure) for name, function in self._scheduled.items()),
        ]:
            self._alarm(
                f"{name}Errors",
                metric=function.metric_errors(period=FIVE_MINUTES, statistic=cloudwatch.Stats.SUM),
                threshold=1,
                description=f"The {name} Lambda failed ({consequence}). Look at its log group.",
            )
        self._alarm(
            "Api5xx",
            metric=self._api.rest_api.metric_server_error(period=FIVE_MINUTES, statistic=cloudwatch.Stats.SUM),
            threshold=1,
            description="API Gateway answered 5xx: Twilio webhooks or call control are failing.",
        )
        self._alarm(
            "CallControl5xx",
            metric=access_log_metric(self._namespace, CALL_CONTROL_5XX_METRIC),
            threshold=1,
            description="The call-control routes (/calls, transfer, hang-up) answered 5xx: transfers or hang-ups "
            "requested by the relay are failing.",
        )
        self._alarm(
            "StatusCallback4xx",
            metric=access_log_metric(self._namespace, STATUS_CALLBACK_4XX_METRIC),
            threshold=STATUS_CALLBACK_4XX_THRESHOLD,
            description="Twilio's status callbacks are being refused (4xx: bad signature, throttled, WAF-blocked). "
            "Twilio does not retry them: the sweep recovers those calls from Twilio's REST API, later.",
        )
        self._alarm(
            "SeatDrift",
            metric=lambda_metric(self._namespace, LambdaMetric.SEAT_DRIFT, labelled=False),
            threshold=1,
            description="The agent seat counter disagreed with the call records and the sweep corrected it: a seat "
            "moved outside a call's transaction (a hand edit, a deleted record). Look at the sweep's log.",
        )
        budget = self._settings.daily_cost_budget_usd
        self._alarm(
            "DailyCost",
            metric=relay_metric(self._namespace, RelayMetric.CALL_COST).with_(period=ONE_DAY),
            threshold=budget,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description=f"The calls' estimated model cost today (UTC) is above USD {budget} (context "
            "dailyCostBudgetUsd): unusual traffic or an abuser; see the Calls and cost widgets.",
        )
        self._alarm(
            "NoHealthyRelay",
            metric=self._endpoint.target_group.metrics.healthy_host_count(
                period=ONE_MINUTE, statistic=cloudwatch.Stats.MINIMUM
            ),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=2,
            # No data means no target reported healthy: that is the outage this alarm is for.
            missing=cloudwatch.TreatMissingData.BREACHING,
            description="No healthy relay task behind the load balancer: calls go to the human line (or fail).",
        )
        self._alarm(
            "ModelErrors",
            metric=relay_metric(self._namespace, RelayMetric.MODEL_ERRORS),
            threshold=MODEL_ERRORS_THRESHOLD,
            description="The relay saw repeated OpenAI Realtime errors (auth, quota, outages): calls are being "
            "transferred or failing.",
        )
        self._alarm(
            "GreetingLatencyP95",
            metric=relay_metric(self._namespace, RelayMetric.GREETING_LATENCY, cloudwatch.Stats.percentile(95)),
            threshold=self._settings.greeting_latency_alarm_ms,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            description=f"p95 greeting latency above {self._settings.greeting_latency_alarm_ms} ms for 15 minutes: "
            "callers wait in silence before the agent speaks.",
        )

    # ---- dashboard ---------------------------------------------------------------------------------------------------
    def _graph(
        self, title: str, left: list[cloudwatch.IMetric], right: list[cloudwatch.IMetric] | None = None
    ) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(title=title, left=left, right=right or [], width=WIDGET_WIDTH, height=6)

    def _build_dashboard(self) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{self._settings.stack_name}-{self._settings.region}"
        )
        p50, p95, p99 = (cloudwatch.Stats.percentile(p) for p in (50, 95, 99))
        functions = self._api.functions
        target_metrics = self._endpoint.target_group.metrics
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown="# Phone voice agent\nCalls, the latency callers hear, quality, cost, and the fleet.",
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            self._graph(
                "Active calls per relay task",
                [
                    active_calls_metric(self._namespace).with_(label="average per task (scaling target)"),
                    active_calls_metric(self._namespace).with_(
                        statistic=cloudwatch.Stats.MAXIMUM, label="busiest task"
                    ),
                ],
            ),
            self._graph(
                "Calls",
                [lambda_metric(self._namespace, m) for m in (LambdaMetric.CALLS_STARTED, LambdaMetric.OUTBOUND_CALLS)],
                [lambda_metric(self._namespace, m) for m in (LambdaMetric.OVERFLOW_CALLS, LambdaMetric.HANG_UPS)],
            ),
            self._graph(
                "Transfers to a human",
                [
                    lambda_metric(self._namespace, LambdaMetric.TRANSFERS),
                    relay_metric(self._namespace, RelayMetric.TRANSFERS, label="relay Transfers"),
                ],
            ),
        )
        dashboard.add_widgets(
            self._graph(
                "Greeting latency (ms)",
                [relay_line(self._namespace, RelayMetric.GREETING_LATENCY, s) for s in (p50, p95, p99)],
            ),
            self._graph(
                "Turn latency (ms)", [relay_line(self._namespace, RelayMetric.TURN_LATENCY, s) for s in (p50, p95, p99)]
            ),
            self._graph(
                "Tools",
                [relay_line(self._namespace, RelayMetric.TOOL_LATENCY, s) for s in (p50, p95)],
                [relay_line(self._namespace, RelayMetric.TOOL_ERRORS)],
            ),
        )
        dashboard.add_widgets(
            self._graph(
                "Quality signals",
                [
                    relay_line(self._namespace, RelayMetric.BARGE_INS),
                    relay_line(self._namespace, RelayMetric.MODEL_ERRORS),
                ],
                [
                    lambda_metric(self._namespace, LambdaMetric.TRANSCRIPTS_RECOVERED),
                    lambda_metric(self._namespace, LambdaMetric.CALLS_SWEPT),
                    lambda_metric(self._namespace, LambdaMetric.CALLS_RECONCILED),
                    lambda_metric(self._namespace, LambdaMetric.SEAT_DRIFT),
                    lambda_metric(self._namespace, LambdaMetric.NUMBERS_REDACTED),
                    lambda_metric(self._namespace, LambdaMetric.CALLS_ANALYZED),
                    lambda_metric(self._namespace, LambdaMetric.RECORDINGS_STORED),
                ],
            ),
            self._graph(
                "Refused connections",
                [
                    relay_line(self._namespace, RelayMetric.REJECTED_STREAMS),
                    lambda_metric(self._namespace, LambdaMetric.REJECTED_SIGNATURES),
                    lambda_metric(self._namespace, LambdaMetric.CALLS_OVER_CALLER_LIMIT),
                    access_log_metric(self._namespace, STATUS_CALLBACK_4XX_METRIC, labelled=True),
                ],
            ),
            self._graph(
                "Call length (s) and cost (USD)",
                [
                    relay_line(self._namespace, RelayMetric.CALL_DURATION, cloudwatch.Stats.AVERAGE),
                    relay_line(self._namespace, RelayMetric.CALL_DURATION, p95),
                ],
                [
                    relay_metric(
                        self._namespace, RelayMetric.CALL_COST, cloudwatch.Stats.SUM, label="cost per 5 min (USD)"
                    )
                ],
            ),
        )
        dashboard.add_widgets(
            self._graph(
                "Model sessions kept alive",
                [
                    relay_line(self._namespace, RelayMetric.MODEL_RECONNECTS),
                    relay_line(self._namespace, RelayMetric.MODEL_ROTATIONS),
                ],
                [
                    relay_line(self._namespace, RelayMetric.SILENCE_ENDS),
                    relay_line(self._namespace, RelayMetric.READY_AT_DEADLINE),
                ],
            ),
        )
        dashboard.add_widgets(
            self._graph(
                "Relay fleet",
                [
                    target_metrics.healthy_host_count(statistic=cloudwatch.Stats.MINIMUM, period=ONE_MINUTE),
                    target_metrics.unhealthy_host_count(statistic=cloudwatch.Stats.MAXIMUM, period=ONE_MINUTE),
                ],
                [
                    self._relay.service.metric_cpu_utilization(period=ONE_MINUTE),
                    self._relay.service.metric_memory_utilization(period=ONE_MINUTE),
                ],
            ),
            self._graph(
                "API",
                [
                    self._api.rest_api.metric_count(period=FIVE_MINUTES),
                    self._api.rest_api.metric_client_error(period=FIVE_MINUTES),
                    self._api.rest_api.metric_server_error(period=FIVE_MINUTES),
                ],
                [self._api.rest_api.metric_latency(period=FIVE_MINUTES, statistic=p95)],
            ),
            self._graph(
                "Lambda errors and p95 duration",
                [f.metric_errors(period=FIVE_MINUTES, label=f"{name} errors") for name, f in functions.items()],
                [
                    functions[name].metric_duration(period=FIVE_MINUTES, statistic=p95, label=f"{name} p95")
                    for name in ("IncomingCall", "CallStatus", "Transfer")
                ],
            ),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24, height=4)
        )
        return dashboard

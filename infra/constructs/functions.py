"""The Lambda package (one code asset + one dependency layer, built locally by infra.bundling) and the factory every
function of the stack is made with: its own role, its own log group, nothing it does not need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import AssetHashType, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import (
    ANALYSIS_REQUIREMENTS,
    StagedAsset,
    build_dependency_layer,
    bytecode_interpreter,
    stage_lambda_code,
)
from infra.nag import acknowledge
from infra.settings import Architecture

RUNTIME = lambda_.Runtime.PYTHON_3_12
LOG_RETENTION = logs.RetentionDays.ONE_MONTH


def _lambda_architecture(architecture: Architecture) -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64 if architecture is Architecture.ARM64 else lambda_.Architecture.X86_64


class LambdaPackage(Construct):
    """`callcore/` + `lambdas/` as the code of every function, their dependencies as one layer."""

    def __init__(self, scope: Construct, construct_id: str, *, architecture: Architecture) -> None:
        super().__init__(scope, construct_id)
        self._architecture = architecture
        self.architecture = _lambda_architecture(architecture)
        self._bytecode_python = bytecode_python = bytecode_interpreter()
        code = stage_lambda_code(bytecode_python=bytecode_python)
        self.code = lambda_.Code.from_asset(
            str(code.path), asset_hash=code.asset_hash, asset_hash_type=AssetHashType.CUSTOM
        )
        self._layer_asset = build_dependency_layer(architecture, bytecode_python=bytecode_python)
        self.layer = self._layer(
            "Dependencies",
            self._layer_asset,
            "lambdas/requirements.txt for the Lambda platform (Powertools, pydantic, twilio)",
        )
        self._analysis_layer: lambda_.LayerVersion | None = None

    def _layer(self, construct_id: str, asset: StagedAsset, description: str) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            construct_id,
            code=lambda_.Code.from_asset(
                str(asset.path), asset_hash=asset.asset_hash, asset_hash_type=AssetHashType.CUSTOM
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[self.architecture],
            description=description,
            removal_policy=RemovalPolicy.RETAIN,  # functions of a rolled-back deploy may still reference the old one
        )

    @property
    def analysis_layer(self) -> lambda_.LayerVersion:
        """The OpenAI SDK, on top of the shared layer: only the post-call analysis function gets it (built, and
        fetched by pip on the first synth, only when that function is part of the stack)."""
        if self._analysis_layer is None:
            asset = build_dependency_layer(
                self._architecture,
                ANALYSIS_REQUIREMENTS,
                bytecode_python=self._bytecode_python,
                on_top_of=self._layer_asset,
            )
            self._analysis_layer = self._layer(
                "AnalysisDependencies", asset, "lambdas/analysis-requirements.txt on top of the shared layer (openai)"
            )
        return self._analysis_layer

    def function(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        environment: Mapping[str, str],
        timeout: Duration,
        memory_mib: int,
        statements: Sequence[iam.PolicyStatement] = (),
        extra_layers: Sequence[lambda_.ILayerVersion] = (),
    ) -> lambda_.Function:
        """A function with its own least-privilege role: write its own logs, send traces, plus `statements`."""
        log_group = logs.LogGroup(
            scope,
            f"{construct_id}Logs",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{construct_id} Lambda: {description}"[:1000],
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogStreams",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        for statement in statements:
            role.add_to_policy(statement)
        function = lambda_.Function(
            scope,
            construct_id,
            description=description[:256],
            runtime=RUNTIME,
            architecture=self.architecture,
            handler=handler,
            code=self.code,
            layers=[self.layer, *extra_layers],
            environment=dict(environment),
            timeout=timeout,
            memory_size=memory_mib,
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=log_group,
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions (AWS docs).",
            "Resource::*",
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "Pinned to python3.12 on purpose: the dependency layer is built for cp312 wheels and the code is tested on "
            "3.11/3.12; moving to a newer runtime is a deliberate upgrade of both.",
        )
        return function

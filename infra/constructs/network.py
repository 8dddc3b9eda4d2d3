"""The relay's network: a VPC over two availability zones, public subnets for the load balancer and the NAT,
private subnets for the tasks (their only way out is the NAT, to OpenAI and Twilio), flow logs.

Cost: a NAT gateway is ~USD 33/month plus USD 0.045/GB. One (the default, `natGateways=1`) carries all egress; if its
zone fails, the relay in the other zone loses its way to OpenAI until the zone recovers. `natGateways=2` removes that
single point for ~USD 33/month more. DynamoDB and S3 traffic skips the NAT through free gateway endpoints.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

MAX_AZS = 2


class Network(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, nat_gateways: int) -> None:
        super().__init__(scope, construct_id)
        self.vpc = self._build_vpc(nat_gateways)
        self._build_flow_logs()

    def _build_vpc(self, nat_gateways: int) -> ec2.Vpc:
        return ec2.Vpc(
            self,
            "Vpc",
            max_azs=MAX_AZS,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="relay", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
            restrict_default_security_group=True,
        )

    def _build_flow_logs(self) -> None:
        log_group = logs.LogGroup(
            self, "FlowLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group),
            # Rejected connections are what an investigation needs; accepted media streams would be most of the
            # volume (and of the ingestion bill) and say nothing the ALB access logs do not.
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )

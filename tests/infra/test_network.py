"""Network stack: VPC layout, endpoints, flow logs and the request-path security groups."""

from __future__ import annotations

from aws_cdk.assertions import Match

from tests.infra.conftest import Synthesized, only


def test_vpc_spans_the_configured_zones_with_three_subnet_tiers(each_env: Synthesized) -> None:
    network = each_env.config.network
    vpc = only(each_env.network, "AWS::EC2::VPC")
    assert vpc["Properties"]["CidrBlock"] == network.vpc_cidr

    subnets = each_env.network.find_resources("AWS::EC2::Subnet")
    zones = {subnet["Properties"]["AvailabilityZone"] for subnet in subnets.values()}
    assert zones == set(network.availability_zones)
    assert len(subnets) == 3 * len(network.availability_zones)  # public, private, isolated
    each_env.network.resource_count_is("AWS::EC2::NatGateway", network.nat_gateways)


def test_flow_logs_capture_all_traffic_into_a_retained_log_group(each_env: Synthesized) -> None:
    flow_log = only(each_env.network, "AWS::EC2::FlowLog")
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    assert flow_log["Properties"]["LogDestinationType"] == "cloud-watch-logs"
    each_env.network.has_resource_properties(
        "AWS::Logs::LogGroup", {"RetentionInDays": each_env.config.network.flow_log_retention_days}
    )


def test_vpc_endpoints_keep_aws_traffic_off_the_nat(each_env: Synthesized) -> None:
    endpoints = each_env.network.find_resources("AWS::EC2::VPCEndpoint")
    services = sorted(
        str(endpoint["Properties"]["ServiceName"]) for endpoint in endpoints.values()
    )
    assert len(services) == 5
    for suffix in ("ecr.api", "ecr.dkr", "logs", "secretsmanager"):
        each_env.network.has_resource_properties(
            "AWS::EC2::VPCEndpoint",
            {
                "ServiceName": f"com.amazonaws.{each_env.config.region}.{suffix}",
                "VpcEndpointType": "Interface",
                "PrivateDnsEnabled": True,
            },
        )
    each_env.network.has_resource_properties(
        "AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway", "ServiceName": Match.any_value()}
    )


def _load_balancer_group(env: Synthesized) -> dict:
    groups = env.network.find_resources(
        "AWS::EC2::SecurityGroup", {"Properties": {"GroupDescription": "ALB: public listeners"}}
    )
    assert len(groups) == 1
    return next(iter(groups.values()))["Properties"]


def test_alb_is_open_only_on_listener_ports_and_test_port_only_inside_the_vpc(
    each_env: Synthesized,
) -> None:
    ingress = _load_balancer_group(each_env)["SecurityGroupIngress"]
    public = sorted(rule["FromPort"] for rule in ingress if rule.get("CidrIp") == "0.0.0.0/0")
    assert public == ([80, 443] if each_env.config.https else [80])
    test_port = each_env.config.service.test_listener_port
    assert [rule["CidrIp"] for rule in ingress if rule["FromPort"] == test_port] == [
        each_env.config.network.vpc_cidr
    ]
    assert len(ingress) == len(public) + 1


def test_alb_egress_and_app_ingress_are_only_the_container_port(each_env: Synthesized) -> None:
    port = each_env.config.service.container_port
    egress = each_env.network.find_resources("AWS::EC2::SecurityGroupEgress")
    assert [rule["Properties"]["FromPort"] for rule in egress.values()] == [port]
    app_ingress = each_env.network.find_resources("AWS::EC2::SecurityGroupIngress")
    assert [(rule["Properties"]["FromPort"], rule["Properties"]["ToPort"]) for rule in app_ingress.values()] == [
        (port, port)
    ]
    assert "SourceSecurityGroupId" in next(iter(app_ingress.values()))["Properties"]

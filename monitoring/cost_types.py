"""Which CloudFormation resource types the cost estimate prices (monitoring/cost_model.py) and which
cost nothing by themselves; a type in neither list is reported as unpriced, never silently dropped."""

from __future__ import annotations

# Types that cost nothing by themselves (or only through the resources listed here as priced).
FREE_TYPES = frozenset({
    "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::RouteTable", "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::Route", "AWS::EC2::InternetGateway", "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress", "AWS::EC2::FlowLog", "AWS::EC2::EIP",
    "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "Custom::VpcRestrictDefaultSG",
    "AWS::RDS::DBParameterGroup", "AWS::RDS::DBSubnetGroup", "AWS::SecretsManager::SecretTargetAttachment",
    "AWS::SecretsManager::RotationSchedule", "AWS::SecretsManager::ResourcePolicy", "AWS::Serverless::Application",
    "AWS::MSK::Topic", "AWS::S3::BucketPolicy", "AWS::ECS::Cluster", "AWS::ECS::ClusterCapacityProviderAssociations",
    "AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::ElasticLoadBalancingV2::ListenerRule", "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy", "AWS::WAFv2::IPSet", "AWS::WAFv2::WebACLAssociation",
    "AWS::WAFv2::LoggingConfiguration", "AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription",
    "AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "AWS::Lambda::Version", "AWS::Lambda::Alias",
    "AWS::Lambda::EventSourceMapping", "AWS::Lambda::Permission", "AWS::Glue::Database", "AWS::Glue::Table",
    "AWS::ApiGatewayV2::Integration", "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Stage",
    "AWS::CodeDeploy::Application", "AWS::CodeDeploy::DeploymentGroup", "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolDomain", "AWS::Cognito::UserPoolClient", "AWS::ServiceDiscovery::PrivateDnsNamespace",
    "AWS::ServiceDiscovery::Service", "AWS::ECS::TaskDefinition", "AWS::CDK::Metadata", "AWS::Logs::ResourcePolicy",
    "AWS::Logs::MetricFilter", "AWS::Logs::SubscriptionFilter", "AWS::Events::Rule", "AWS::SSM::Parameter",
    "AWS::CertificateManager::Certificate", "AWS::WAFv2::RegexPatternSet", "AWS::IAM::InstanceProfile",
    "AWS::ElastiCache::SubnetGroup", "AWS::ElastiCache::ParameterGroup", "AWS::ElastiCache::User",
    "AWS::ElastiCache::UserGroup", "AWS::Lambda::LayerVersion", "AWS::Cognito::UserPoolUser",
    "AWS::Cognito::UserPoolGroup", "AWS::ElasticLoadBalancingV2::ListenerCertificate",
})

# Types with a line item of their own in cost_model.py.
PRICED_TYPES = frozenset({
    "AWS::EC2::NatGateway", "AWS::EC2::VPCEndpoint", "AWS::RDS::DBInstance", "AWS::MSK::Cluster",
    "AWS::ECS::Service", "AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::WAFv2::WebACL",
    "AWS::SecretsManager::Secret", "AWS::KMS::Key", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm",
    "AWS::CloudWatch::Dashboard", "AWS::Logs::LogGroup", "AWS::Lambda::Function", "AWS::S3::Bucket",
    "AWS::ApiGatewayV2::Api", "AWS::ElastiCache::ServerlessCache", "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::CacheCluster",
})

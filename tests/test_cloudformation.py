"""The EC2 stack (deploy/cloudformation/swiftchat-api.yaml): cfn-lint, then created in moto and looked at.

moto's CloudFormation makes every resource of the one-instance stack. It has no ElastiCache or
Secrets Manager resources, so the stack with two or more instances (which adds Redis and its key
pepper) is checked by cfn-lint and by reading the template, and moto's refusal of it is pinned
below so that its support is noticed. moto applies no load balancer or target group attributes
either: those are read from the template.
"""

import ast
import base64
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from cfnlint.decode import decode

# moto warns of every resource type it cannot make (ElastiCache, Secrets Manager), from its server thread.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.*not supported by moto:UserWarning")

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "cloudformation" / "swiftchat-api.yaml"
REPOSITORY = "https://git.example.com/ops/swiftchat-api.git"
CLIENT_ROLE = "arn:aws:iam::123456789012:role/swiftchat-client"


def _lint(path):
    cfn_lint = Path(sys.executable).parent / "cfn-lint"  # requirements-dev.txt
    return subprocess.run([str(cfn_lint), str(path)], capture_output=True, text=True, timeout=120)


def test_cfn_lint_passes_the_template():
    result = _lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_would_catch_a_mistake(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("HealthCheckPath: /readyz", "HealthCheckPaht: /readyz"))
    result = _lint(broken)
    assert result.returncode != 0 and "HealthCheckPaht" in result.stdout


def _client(service, moto_url):
    return boto3.client(service, region_name="us-west-2", endpoint_url=moto_url)


def _create(moto_url, name, **parameters):
    ec2 = _client("ec2", moto_url)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    given = {"VpcId": vpc, "SubnetIds": ",".join(s["SubnetId"] for s in subnets[:2]), "RepositoryUrl": REPOSITORY}
    given.update(parameters)
    cloudformation = _client("cloudformation", moto_url)
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in given.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + 60
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        assert time.monotonic() < deadline, "the stack was not made within 60 s"
        time.sleep(0.1)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=name)["StackResources"]
        if "LogicalResourceId" in r
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return resources, outputs


@pytest.fixture(scope="module")
def one_instance(moto_url):
    return _create(moto_url, "swiftchat-one", ClientRoleArn=CLIENT_ROLE)


def _user_data(moto_url, resources):
    ec2 = _client("ec2", moto_url)
    version = ec2.describe_launch_template_versions(LaunchTemplateId=resources["LaunchTemplate"])
    return base64.b64decode(version["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()


def test_one_instance_behind_a_load_balancer(moto_url, one_instance):
    resources, outputs = one_instance
    elb = _client("elbv2", moto_url)
    balancer = resources["LoadBalancer"]
    group = elb.describe_target_groups(TargetGroupArns=[resources["TargetGroup"]])["TargetGroups"][0]
    assert (group["Port"], group["HealthCheckPath"]) == (8080, "/readyz")
    listener = elb.describe_listeners(LoadBalancerArn=balancer)["Listeners"]
    assert [(item["Port"], item["DefaultActions"][0]["Type"]) for item in listener] == [(80, "forward")]
    rules = elb.describe_rules(ListenerArn=listener[0]["ListenerArn"])["Rules"]
    metrics = [rule for rule in rules if rule["Conditions"]]
    assert metrics[0]["Conditions"][0]["PathPatternConfig"]["Values"] == ["/metrics", "/metrics/*"]
    assert metrics[0]["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "403"
    group = _client("autoscaling", moto_url).describe_auto_scaling_groups(
        AutoScalingGroupNames=[resources["Instances"]]
    )
    group = group["AutoScalingGroups"][0]
    assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (1, 1, 1)
    assert group["TargetGroupARNs"] == [resources["TargetGroup"]]
    ec2 = _client("ec2", moto_url)
    groups = ec2.describe_security_groups(GroupIds=[resources["InstanceSecurityGroup"]])["SecurityGroups"]
    (ingress,) = groups[0]["IpPermissions"]
    assert (ingress["FromPort"], ingress["ToPort"]) == (8080, 8080) and not ingress["IpRanges"]
    assert [pair["GroupId"] for pair in ingress["UserIdGroupPairs"]] == [resources["LoadBalancerSecurityGroup"]]
    assert outputs["Url"].startswith("http://") and outputs["KeyStore"].startswith("sqlite:////var/lib/swiftchat-api/")


def test_the_load_balancer_outlasts_the_stream_keep_alive_and_the_server_outlasts_it():
    """moto 5.2 takes no load balancer or target group attributes from CloudFormation: read from the template."""
    template, _ = decode(str(TEMPLATE))
    attributes = template["Resources"]["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]
    idle = next(a["Value"] for a in attributes if a["Key"] == "idle_timeout.timeout_seconds")
    assert idle == {"Ref": "IdleTimeoutSeconds"}
    default = template["Parameters"]["IdleTimeoutSeconds"]["Default"]
    assert template["Parameters"]["IdleTimeoutSeconds"]["MinValue"] > 5  # SWIFTCHAT_KEEPALIVE_SECONDS
    assert default == 120
    drop = next(a["Value"] for a in attributes if a["Key"] == "routing.http.drop_invalid_header_fields.enabled")
    assert drop == "false"  # the apps' request_url header reaches the server
    delay = template["Resources"]["TargetGroup"]["Properties"]["TargetGroupAttributes"][0]
    assert delay == {"Key": "deregistration_delay.timeout_seconds", "Value": "120"}  # GRACEFUL_TIMEOUT's default


def test_the_instances_run_the_readmes_install_with_the_stacks_settings(moto_url, one_instance):
    script = _user_data(moto_url, one_instance[0])
    assert script.startswith("#!/bin/bash\n")
    assert f"git clone --depth 1 --branch 'main' '{REPOSITORY}' /opt/swiftchat-api-src" in script
    install = next(line for line in script.splitlines() if line.strip().startswith("env API_KEY_NAME="))
    assert "API_KEY_NAME='/swiftchat/api-key'" in install and "AWS_REGION='us-west-2'" in install
    assert f"CLIENT_ROLE_ARN='{CLIENT_ROLE}'" in install
    assert "SWIFTCHAT_STORE='sqlite:////var/lib/swiftchat-api/swiftchat.db'" in script
    assert script.splitlines()[script.splitlines().index(install) + 2].strip() == "deploy/install.sh"
    # The server's keep-alive outlasts the load balancer's idle time-out, and its shutdown grace the keep-alive.
    sums = [line.strip() for line in script.splitlines() if line.strip().startswith(("keepalive=", "graceful="))]
    keepalive, graceful = subprocess.run(
        ["bash", "-c", "; ".join(sums) + '; echo "$keepalive $graceful"'], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(graceful) > int(keepalive) > 120
    assert "/opt/aws/bin/cfn-signal --exit-code" in script and "http://127.0.0.1:8080/readyz" in script
    assert "if [ -n '' ]; then" in script  # one instance, SQLite: no pepper secret to read
    assert "set -euo pipefail" in script and "-x" not in script.split("pipefail")[0]  # the pepper stays out of logs


def _statements(moto_url, role):
    iam = _client("iam", moto_url)
    found = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # moto 5.2 gives a role's own policies from CloudFormation as Python's repr
            document = ast.literal_eval(document)
        found += document["Statement"]
    assert not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]  # no managed policy widens it
    return found


def _actions(statement):
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def test_the_instance_role_may_do_what_the_server_does_and_no_more(moto_url, one_instance):
    statements = _statements(moto_url, one_instance[0]["InstanceRole"])
    by_action = {action: statement for statement in statements for action in _actions(statement)}
    assert set(by_action) == {
        "bedrock:InvokeModel",
        "bedrock:InvokeModelWithResponseStream",
        "bedrock:CountTokens",
        "bedrock:ListFoundationModels",
        "bedrock:ListInferenceProfiles",
        "ssm:GetParameter",
        "sts:AssumeRole",
    }
    assert by_action["ssm:GetParameter"]["Resource"] == "arn:aws:ssm:us-west-2:123456789012:parameter/swiftchat/api-key"
    assert by_action["sts:AssumeRole"]["Resource"] == CLIENT_ROLE
    invoke = by_action["bedrock:InvokeModelWithResponseStream"]["Resource"]
    assert invoke == [
        "arn:aws:bedrock:*::foundation-model/*",
        "arn:aws:bedrock:*:123456789012:inference-profile/*",
    ]
    assert all(statement["Effect"] == "Allow" for statement in statements)


def test_https_with_a_certificate_and_no_client_role(moto_url):
    certificate = _client("acm", moto_url).request_certificate(DomainName="chat.example.com")["CertificateArn"]
    resources, outputs = _create(moto_url, "swiftchat-tls", CertificateArn=certificate, IdleTimeoutSeconds="300")
    elb = _client("elbv2", moto_url)
    listeners = {
        item["Port"]: item for item in elb.describe_listeners(LoadBalancerArn=resources["LoadBalancer"])["Listeners"]
    }
    assert listeners[80]["DefaultActions"][0]["RedirectConfig"]["Protocol"] == "HTTPS"
    assert listeners[443]["Certificates"][0]["CertificateArn"] == certificate
    assert outputs["Url"].startswith("https://")
    actions = {action for s in _statements(moto_url, resources["InstanceRole"]) for action in _actions(s)}
    assert "sts:AssumeRole" not in actions  # no client role, no permission to assume one


def test_more_than_one_instance_shares_a_redis_key_store():
    template, problems = decode(str(TEMPLATE))
    assert not problems
    resources = template["Resources"]
    assert template["Conditions"]["UseRedis"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "InstanceCount"}, "1"]}]}
    for name in ("Redis", "RedisSubnetGroup", "RedisSecurityGroup"):
        assert resources[name]["Condition"] == "UseRedis"
    redis = resources["Redis"]["Properties"]
    assert redis["TransitEncryptionEnabled"] and redis["AutomaticFailoverEnabled"] and redis["SnapshotRetentionLimit"]
    assert "NumNodeGroups" not in redis  # cluster mode off: the key store does not speak Redis Cluster
    store = resources["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"][1]
    assert store["Store"]["Fn::If"][0] == "UseRedis"
    assert store["Store"]["Fn::If"][1] == {
        "Fn::Sub": "rediss://${Redis.PrimaryEndPoint.Address}:${Redis.PrimaryEndPoint.Port}/0"
    }
    # ...with keys hashed with a secret of the stack's own, which the role may read and the install is given.
    assert resources["KeyPepper"]["Condition"] == "UseRedis"
    assert resources["KeyPepper"]["Properties"]["GenerateSecretString"]["ExcludePunctuation"]  # fit for the env file
    grant = resources["KeyPepperPolicy"]
    assert grant["Condition"] == "UseRedis" and grant["Properties"]["Roles"] == [{"Ref": "InstanceRole"}]
    assert grant["Properties"]["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "KeyPepper"}}
    ]
    assert store["PepperSecret"] == {"Fn::If": ["UseRedis", {"Ref": "KeyPepper"}, ""]}
    script = resources["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"][0]
    assert "export SWIFTCHAT_KEY_PEPPER" in script and script.index("export SWIFTCHAT_KEY_PEPPER") < script.index(
        "deploy/install.sh"
    )
    ingress = resources["RedisSecurityGroup"]["Properties"]["SecurityGroupIngress"][0]
    assert ingress["SourceSecurityGroupId"] == {"Ref": "InstanceSecurityGroup"} and ingress["FromPort"] == 6379


def test_moto_cannot_make_the_redis_key_store(moto_url):
    """moto 5.2's CloudFormation has no ElastiCache or Secrets Manager: when it has, make this stack here too."""
    with pytest.raises(ClientError, match="undefined resource Redis|Policy statement must contain resources"):
        _create(moto_url, "swiftchat-two", InstanceCount="2")

"""Temporary AWS credentials for the apps, from STS AssumeRole."""

from botocore.exceptions import BotoCoreError, ClientError

from .. import telemetry

SESSION_SECONDS = 3600


def temporary_credentials(sts, role_arn):
    """Assume role_arn for an hour; ``{"error": ...}`` when that is not possible."""
    if not role_arn:
        return {"error": "This server has no CLIENT_ROLE_ARN configured, so it hands out no credentials."}
    try:
        issued = sts.assume_role(RoleArn=role_arn, RoleSessionName="swiftchat-app", DurationSeconds=SESSION_SECONDS)
    except (ClientError, BotoCoreError) as error:
        telemetry.upstream_error(error)
        return {"error": str(error)}
    credentials = issued["Credentials"]
    return {
        "accessKeyId": credentials["AccessKeyId"],
        "secretAccessKey": credentials["SecretAccessKey"],
        "sessionToken": credentials["SessionToken"],
        "expiration": credentials["Expiration"].isoformat(),
    }

"""Temporary AWS credentials for the apps, from STS AssumeRole."""

from botocore.exceptions import BotoCoreError, ClientError

from ..exceptions import Unfulfilled, unfulfilled

SESSION_SECONDS = 3600


def temporary_credentials(sts, role_arn):
    """Assume role_arn for an hour; Unfulfilled (the apps' ``{"error": ...}``) when that is not possible."""
    if not role_arn:
        raise Unfulfilled("This server has no CLIENT_ROLE_ARN configured, so it hands out no credentials.")
    try:
        issued = sts.assume_role(RoleArn=role_arn, RoleSessionName="swiftchat-app", DurationSeconds=SESSION_SECONDS)
    except (ClientError, BotoCoreError) as error:
        # Redacted like every upstream error: STS quotes the signature of a request it cannot read.
        raise unfulfilled(error) from None
    credentials = issued["Credentials"]
    return {
        "accessKeyId": credentials["AccessKeyId"],
        "secretAccessKey": credentials["SecretAccessKey"],
        "sessionToken": credentials["SessionToken"],
        "expiration": credentials["Expiration"].isoformat(),
    }

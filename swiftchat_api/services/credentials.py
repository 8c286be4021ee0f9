"""Temporary AWS credentials for the apps, from STS AssumeRole."""

from botocore.exceptions import BotoCoreError, ClientError

from ..exceptions import Unfulfilled, unfulfilled
from ..store import SHARED_KEY_NAME

SESSION_SECONDS = 3600
SHARED_SESSION = "swiftchat-app"
_SESSION_PREFIX = "swiftchat-key-"
_SESSION_NAME_LIMIT = 64  # STS's, for RoleSessionName
NOT_FOR_THIS_KEY = (
    "This key is not given AWS credentials: its requests go through this server, which counts and limits"
    " them. Ask the operator for a key made with --aws-credentials if you need them."
)


def temporary_credentials(sts, role_arn, identity):
    """Assume role_arn for an hour for ``identity``; Unfulfilled (the apps' ``{"error": ...}``) when that is not
    possible, or not for this key.

    The shared key's session is ``swiftchat-app``; a per-person key's (only one created with
    ``--aws-credentials``) is named after the key, so that CloudTrail shows who called Bedrock.
    """
    if identity.name != SHARED_KEY_NAME and not identity.aws_credentials:
        raise Unfulfilled(NOT_FOR_THIS_KEY)
    if not role_arn:
        raise Unfulfilled("This server has no CLIENT_ROLE_ARN configured, so it hands out no credentials.")
    session = SHARED_SESSION if identity.name == SHARED_KEY_NAME else _SESSION_PREFIX + identity.name
    try:
        issued = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session[:_SESSION_NAME_LIMIT], DurationSeconds=SESSION_SECONDS
        )
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

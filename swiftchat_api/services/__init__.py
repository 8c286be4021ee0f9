"""Bedrock logic: each function takes its boto3 client and knows nothing of Flask."""

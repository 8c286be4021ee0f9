"""A Bedrock emulator that unmodified boto3 talks to; see server.py."""

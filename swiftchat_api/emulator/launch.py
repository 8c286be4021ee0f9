"""Start the emulator as a child process and wait until it listens (stdlib only).

Used by gunicorn.conf.py (``SWIFTCHAT_EMULATOR=1``), the tests and the benchmark; it imports
nothing heavy, so gunicorn's master can use it before any worker patches sockets.
"""

import os
import subprocess
import sys


def start(host="127.0.0.1", port=0):
    """Return (process, base url) of a freshly started emulator."""
    process = subprocess.Popen(
        [sys.executable, "-m", "swiftchat_api.emulator", "--host", host, "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    line = process.stdout.readline()
    process.stdout.close()  # the emulator prints only that line
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"the Bedrock emulator did not start: {line!r}")
    return process, line.rsplit(" ", 1)[1].strip()


def environment(url):
    """The variables that point boto3 at the emulator, with stand-in credentials."""
    return {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": url,
        "AWS_ENDPOINT_URL_BEDROCK": url,
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
        "AWS_DEFAULT_REGION": "us-west-2",
    }

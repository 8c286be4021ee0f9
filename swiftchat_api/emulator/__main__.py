"""Run the Bedrock emulator: ``python -m swiftchat_api.emulator [--host H] [--port P]``."""

import argparse
import sys

from .server import serve


def main():
    parser = argparse.ArgumentParser(description="The swiftchat-api Bedrock emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    args = parser.parse_args()

    def ready(port):
        print(f"bedrock-emulator listening on http://{args.host}:{port}", flush=True)

    try:
        serve(args.host, args.port, ready)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()

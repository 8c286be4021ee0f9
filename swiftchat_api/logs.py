"""JSON logs: one object per line, for application logs and the access log alike (stdlib only)."""

import json
import logging
import os
import time


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; ``extra={"fields": {...}}`` adds its members."""

    def format(self, record):
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": os.getpid(),
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level="INFO"):
    """Send the root logger's records to stderr as JSON lines (unless someone configured it already)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("botocore").setLevel(logging.WARNING)


def gunicorn_logconfig(access_log=False, level="INFO"):
    """gunicorn's logconfig_dict: its own and every other logger as JSON lines on stderr.

    gunicorn's plain access line is off unless asked for: the app writes a JSON one itself.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "swiftchat_api.logs.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "gunicorn.access": {
                "handlers": ["stderr"] if access_log else [],
                "level": "INFO" if access_log else "CRITICAL",
                "propagate": False,
            },
            "botocore": {"level": "WARNING"},
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }

"""``flask --app wsgi keys ...``: give each person a key, set their limits, see what they used."""

import datetime
import json
import re
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import AppGroup

from .store import PUBLIC_PEPPER, PUBLIC_PEPPER_WARNING, StoreError

keys = AppGroup("keys", help="Per-person API keys: create, list, revoke, limits, usage.")

NO_LIMIT = "none"


class _Limit(click.ParamType):
    """A positive whole number, or ``none`` for no limit (range checked by the store)."""

    name = "N|none"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == NO_LIMIT:
            return value
        text = str(value).strip().lower()
        if text in ("none", "unlimited"):
            return NO_LIMIT
        if re.fullmatch(r"-?[0-9]{1,20}", text):
            return int(text)
        self.fail("must be a whole number, or 'none' for no limit", param, ctx)


def _value(limit):
    return None if limit in (None, NO_LIMIT) else limit


def _shown(limit):
    return "unlimited" if limit is None else f"{limit:,}"


def _when(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


@contextmanager
def _store():
    """The server's store; any store error becomes a one-line message and exit status 1."""
    store = current_app.extensions["swiftchat"].store
    try:
        store.check()
        yield store
    except StoreError as error:
        raise click.ClickException(str(error)) from None


@keys.command("create")
@click.argument("name")
@click.option("--rpm", type=_Limit(), help="Requests per sliding 60 seconds (default: no limit).")
@click.option("--tokens-per-day", type=_Limit(), help="Input + output tokens per UTC day (default: no limit).")
@click.option("--images-per-day", type=_Limit(), help="Image generations per UTC day (default: no limit).")
@click.option(
    "--aws-credentials",
    is_flag=True,
    help="Let /api/token give this key one-hour AWS credentials (session named after NAME): its holder can"
    " then call Bedrock directly, outside the key's limits and usage, until they expire.",
)
def create(name, rpm, tokens_per_day, images_per_day, aws_credentials):
    """Make a key for NAME; the key alone is the last line (shown only this once)."""
    with _store() as store:
        if store.public_pepper:
            if store.needs_secret_pepper:
                raise click.ClickException(PUBLIC_PEPPER)
            click.echo(f"Warning: {PUBLIC_PEPPER_WARNING}", err=True)
        key = store.create_key(
            name,
            _value(rpm),
            _value(tokens_per_day),
            aws_credentials=aws_credentials,
            images_per_day=_value(images_per_day),
        )
        credentials = ", AWS credentials from /api/token" if aws_credentials else ""
        click.echo(
            f"Created a key for {name} (rpm: {_shown(_value(rpm))}, tokens per day: "
            f"{_shown(_value(tokens_per_day))}, images per day: {_shown(_value(images_per_day))}{credentials}) in"
            f" {store.describe()}. It is shown only now:",
            err=True,
        )
    click.echo(key)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of a table.")
def list_keys(as_json):
    """Show every key's name, limits and state (never the keys themselves)."""
    with _store() as store:
        infos = store.list_keys()
    if as_json:
        rows = [
            {
                "name": info.name,
                "rpm": info.rpm,
                "tokens_per_day": info.tokens_per_day,
                "images_per_day": info.images_per_day,
                "created": _when(info.created),
                "revoked": _when(info.revoked) if info.revoked else None,
                "aws_credentials": info.aws_credentials,
            }
            for info in infos
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not infos:
        click.echo(f"No keys yet in {store.describe()}.", err=True)
        return
    table = [("NAME", "RPM", "TOKENS/DAY", "IMAGES/DAY", "AWS", "CREATED", "STATE")]
    for info in infos:
        state = f"revoked {_when(info.revoked)}" if info.revoked else "active"
        aws = "yes" if info.aws_credentials else "no"
        limits = (_shown(info.rpm), _shown(info.tokens_per_day), _shown(info.images_per_day))
        table.append((info.name, *limits, aws, _when(info.created), state))
    _print_table(table)


@keys.command("revoke")
@click.argument("name")
def revoke(name):
    """Stop NAME's key from working (every worker within about a second); its usage is kept."""
    with _store() as store:
        store.revoke(name)
    click.echo(f"Revoked the key of {name}.")


@keys.command("limits")
@click.argument("name")
@click.option("--rpm", type=_Limit(), help="Requests per sliding 60 seconds, or 'none'.")
@click.option("--tokens-per-day", type=_Limit(), help="Input + output tokens per UTC day, or 'none'.")
@click.option("--images-per-day", type=_Limit(), help="Image generations per UTC day, or 'none'.")
def limits(name, rpm, tokens_per_day, images_per_day):
    """Change NAME's limits without changing the key (options left out stay as they are)."""
    if rpm is None and tokens_per_day is None and images_per_day is None:
        raise click.UsageError(
            "Say what to change: --rpm, --tokens-per-day and/or --images-per-day (a number, or 'none')."
        )
    with _store() as store:
        current = next((info for info in store.list_keys() if info.name == name and not info.revoked), None)
        if current is None:
            raise click.ClickException(f"No active key is named {name}.")
        rpm = current.rpm if rpm is None else _value(rpm)
        tokens_per_day = current.tokens_per_day if tokens_per_day is None else _value(tokens_per_day)
        images_per_day = current.images_per_day if images_per_day is None else _value(images_per_day)
        store.set_limits(name, rpm, tokens_per_day, images_per_day)
    click.echo(
        f"{name}: rpm {_shown(rpm)}, tokens per day {_shown(tokens_per_day)}, images per day"
        f" {_shown(images_per_day)} (in force within a second)."
    )


@keys.command("usage")
@click.option("--json", "as_json", is_flag=True, help="A JSON list per key, with per-day and per-model detail.")
@click.option("--since", metavar="YYYY-MM-DD", help="Only days from this one on (UTC).")
def usage(as_json, since):
    """Requests served and tokens used, per key, day (UTC) and model."""
    if since is not None:
        try:
            datetime.date.fromisoformat(since)
        except ValueError:
            raise click.BadParameter("must be a date like 2026-01-31", param_hint="--since") from None
    with _store() as store:
        people = store.usage(since)
    if as_json:
        click.echo(json.dumps(people, indent=2))
        return
    table = [("NAME", "DAY", "MODEL", "REQUESTS", "INPUT TOKENS", "OUTPUT TOKENS")]
    for person in people:
        for day in person["days"]:
            for model in day["models"]:
                table.append(
                    (
                        person["name"],
                        day["day"],
                        model["model"] or "-",
                        f"{model['requests']:,}",
                        f"{model['input_tokens']:,}",
                        f"{model['output_tokens']:,}",
                    )
                )
        table.append(
            (
                person["name"],
                "total",
                "",
                f"{person['requests']:,}",
                f"{person['input_tokens']:,}",
                f"{person['output_tokens']:,}",
            )
        )
    _print_table(table)


def _print_table(rows):
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

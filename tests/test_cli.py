"""``flask --app wsgi keys ...`` end to end, as an operator runs it: a subprocess, no AWS access."""

import json
import os
import re
import time

import pytest
from conftest import flask_keys, free_port

from swiftchat_api.store import Identity, open_store

KEY_LINE = re.compile(r"sk-swiftchat-[A-Za-z0-9_-]{43}")


PEPPER = "a pepper of the operator's own"


def identity_of(store_url, key):
    """Whom the server, opening the same store, would take key for."""
    store = open_store(store_url, pepper=PEPPER)
    try:
        return store.lookup(key)
    finally:
        store.close()


def keys(store_url, *args, **env):
    """Run ``flask --app wsgi keys ARGS`` with the server's usual settings and no AWS credentials."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environment.update(
        {"API_KEY": "the-legacy-key", "SWIFTCHAT_KEY_PEPPER": PEPPER, **env},
        SWIFTCHAT_STORE=store_url,
        AWS_REGION="us-west-2",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # anything that tried AWS would fail here, not leave the host
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_CONFIG_FILE=os.devnull,
    )
    return flask_keys(environment, *args)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'keys.db'}"


def test_a_person_gets_a_key_sees_usage_and_loses_the_key(store_url):
    made = keys(store_url, "create", "alice", "--rpm", "30", "--tokens-per-day", "100000")
    assert made.returncode == 0, made.stderr
    key = made.stdout.splitlines()[-1]
    assert KEY_LINE.fullmatch(key)
    assert made.stdout == key + "\n"  # the explanation goes to stderr: $(... keys create ...) is the key
    assert "alice" in made.stderr

    store = open_store(store_url, pepper=PEPPER)  # what the server opens with the same settings
    assert store.lookup(key) == Identity("alice", 30, 100000)
    store.record_usage("alice", "anthropic.claude-3-5-sonnet-20240620-v1:0", 12, 230, "2026-01-02")
    store.record_usage("alice", "anthropic.claude-3-5-sonnet-20240620-v1:0", 8, 20, "2026-01-02")

    listed = keys(store_url, "list")
    assert listed.returncode == 0
    assert re.search(r"alice\s+30\s+100,000\s+unlimited\s+no\s+\S+ \S+ UTC\s+active", listed.stdout)
    assert key not in listed.stdout + listed.stderr

    used = keys(store_url, "usage", "--json")
    assert json.loads(used.stdout) == [
        {
            "name": "alice",
            "requests": 2,
            "input_tokens": 20,
            "output_tokens": 250,
            "estimated_input_tokens": 0,
            "estimated_output_tokens": 0,
            "days": [
                {
                    "day": "2026-01-02",
                    "requests": 2,
                    "input_tokens": 20,
                    "output_tokens": 250,
                    "estimated_input_tokens": 0,
                    "estimated_output_tokens": 0,
                    "models": [
                        {
                            "model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
                            "requests": 2,
                            "input_tokens": 20,
                            "output_tokens": 250,
                            "estimated_input_tokens": 0,
                            "estimated_output_tokens": 0,
                        }
                    ],
                }
            ],
        }
    ]
    table = keys(store_url, "usage").stdout
    assert re.search(r"alice\s+2026-01-02\s+anthropic\S+\s+2\s+20\s+250", table)

    revoked = keys(store_url, "revoke", "alice")
    assert revoked.returncode == 0
    assert identity_of(store_url, key) is None
    assert "revoked" in keys(store_url, "list").stdout
    store.close()


def test_limits_change_without_a_new_key(sqlite_url):
    key = keys(sqlite_url, "create", "bob", "--rpm", "10").stdout.strip()
    changed = keys(sqlite_url, "limits", "bob", "--tokens-per-day", "5000")
    assert changed.returncode == 0, changed.stderr
    assert identity_of(sqlite_url, key) == Identity("bob", 10, 5000)
    keys(sqlite_url, "limits", "bob", "--rpm", "none")
    assert identity_of(sqlite_url, key) == Identity("bob", None, 5000)
    assert json.loads(keys(sqlite_url, "list", "--json").stdout)[0]["tokens_per_day"] == 5000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "alice"], "A key named alice exists"),
        (["create", "bob", "--rpm", "-1"], "The rpm limit must be a whole number"),
        (["create", "bob", "--tokens-per-day", "0"], "The tokens per day limit must be a whole number"),
        (["create", "bob", "--rpm", "lots"], "must be a whole number, or 'none'"),
        (["create", "bob smith"], "A key name is 1 to 64 characters"),
        (["revoke", "nobody"], "No active key is named nobody"),
        (["limits", "nobody", "--rpm", "5"], "No active key is named nobody"),
        (["limits", "alice"], "Say what to change"),
        (["usage", "--since", "last week"], "must be a date like"),
    ],
)
def test_bad_input_gets_a_clear_message_and_a_failure_status(sqlite_url, args, message):
    assert keys(sqlite_url, "create", "alice").returncode == 0
    result = keys(sqlite_url, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_store_that_is_down_fails_fast_with_a_message():
    started = time.monotonic()
    result = keys(f"redis://127.0.0.1:{free_port()}/0", "list")
    assert result.returncode == 1
    assert "The key store cannot be used: ConnectionError" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 20


def test_a_pepper_other_than_the_servers_is_refused(sqlite_url):
    assert keys(sqlite_url, "create", "alice", SWIFTCHAT_KEY_PEPPER="server pepper").returncode == 0
    result = keys(sqlite_url, "create", "bob", SWIFTCHAT_KEY_PEPPER="another pepper")
    assert result.returncode == 1
    assert "another SWIFTCHAT_KEY_PEPPER" in result.stderr
    assert keys(sqlite_url, "list", SWIFTCHAT_KEY_PEPPER="server pepper").returncode == 0


def test_keys_need_the_store_but_not_the_servers_key_source(sqlite_url):
    # Right after `make run` an operator's shell has no API_KEY: the CLI still manages the store.
    made = keys(sqlite_url, "create", "bob", API_KEY="")
    assert made.returncode == 0, made.stderr
    assert "Traceback" not in made.stderr
    assert identity_of(sqlite_url, made.stdout.splitlines()[-1]).name == "bob"


def test_the_public_default_pepper_is_refused_for_redis_and_warned_about_for_sqlite(store_url):
    result = keys(store_url, "create", "alice", SWIFTCHAT_KEY_PEPPER="")
    if store_url.startswith("redis"):
        assert result.returncode == 1 and result.stdout == ""
        assert "SWIFTCHAT_KEY_PEPPER is the public default" in result.stderr
    else:
        assert result.returncode == 0 and result.stdout.startswith("sk-swiftchat-")
        assert "Warning: SWIFTCHAT_KEY_PEPPER is the public default" in result.stderr


def test_reserved_names_are_refused_whatever_their_case(store_url):
    for name in ("default", "DEFAULT", "Default"):
        result = keys(store_url, "create", name)
        assert result.returncode == 1 and "is the shared key's" in result.stderr

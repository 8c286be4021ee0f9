"""Stored responses (/v1/responses ``store``), in the key store: one suite on SQLite (a temporary file)
and on a real redis-server, through the store and through the module the route calls."""

import json
import time

import pytest
import redis

from swiftchat_api.config import Config, ConfigError
from swiftchat_api.exceptions import ApiError
from swiftchat_api.oai import responses_store
from swiftchat_api.oai.responses_store import ResponsesStore
from swiftchat_api.store import ResponseBounds, open_store, response_owner

ALICE = response_owner("alice", "a" * 64)
BOB = response_owner("bob", "b" * 64)
ROOMY = ResponseBounds(owner_bytes=10**6, total_bytes=10**7, turns=50)


@pytest.fixture
def store(store_url):
    store = open_store(store_url, timeout=2)
    yield store
    store.close()


def stored(response_id, text="hi", previous=None):
    """A Response object as the route answers it, and its input items."""
    response = {
        "id": response_id,
        "object": "response",
        "previous_response_id": previous,
        "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": f"re {text}"}]}
        ],
    }
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]
    return response, items


def save(store, owner, response_id, previous=None, size=10, expires=None, bounds=ROOMY):
    """Store a record of ``size`` bytes (its JSON and its items' ``[]``); how many were evicted for it."""
    empty = len(json.dumps({"id": response_id, "pad": ""})) + 2
    body = json.dumps({"id": response_id, "pad": "x" * (size - empty)}).encode()
    return store.save_response(owner, response_id, previous, body, b"[]", expires or time.time() + 600, bounds)


def held(store, owner, ids):
    return [response_id for response_id in ids if store.load_response(owner, response_id) is not None]


def test_a_response_is_its_owners_alone(store):
    save(store, ALICE, "r1")
    assert json.loads(store.load_response(ALICE, "r1").response)["id"] == "r1"
    assert store.load_response(BOB, "r1") is None
    assert store.response_head(BOB, "r1") is None
    assert store.response_chain(BOB, "r1", 10) == []
    assert store.delete_response(BOB, "r1") is False
    assert store.load_response(ALICE, "r1") is not None  # bob's delete changed nothing


def test_another_key_of_the_same_name_owns_none_of_the_old_keys_responses(store):
    old, new = response_owner("alice", "1" * 64), response_owner("alice", "2" * 64)
    assert old != new and old.startswith("alice:")
    save(store, old, "r1")
    assert store.load_response(new, "r1") is None


def test_a_chain_is_read_oldest_first_with_its_length_and_size_known_without_a_walk(store):
    save(store, ALICE, "r1", size=100)
    save(store, ALICE, "r2", "r1", size=200)
    save(store, ALICE, "r3", "r2", size=300)
    head = store.response_head(ALICE, "r3")
    assert head.turns == 3
    assert head.conversation_bytes == 600
    chain = store.response_chain(ALICE, "r3", 10)
    assert [turn.id for turn in chain] == ["r1", "r2", "r3"]
    assert [turn.previous for turn in chain] == [None, "r1", "r2"]
    assert [turn.id for turn in store.response_chain(ALICE, "r3", 2)] == ["r2", "r3"]


def test_a_chain_with_a_deleted_response_is_read_up_to_the_gap(store):
    for number in range(1, 5):
        save(store, ALICE, f"r{number}", f"r{number - 1}" if number > 1 else None)
    assert store.delete_response(ALICE, "r2") is True
    chain = store.response_chain(ALICE, "r4", 10)
    assert [turn.id for turn in chain] == ["r3", "r4"]
    assert chain[0].previous == "r2"


def test_continuing_a_conversation_keeps_all_of_it_as_long_as_the_latest_turn(store):
    start = time.time()
    save(store, ALICE, "r1", expires=start + 100)
    save(store, ALICE, "other", expires=start + 100)
    save(store, ALICE, "r2", "r1", expires=start + 300)
    later = start + 200
    assert [turn.id for turn in store.response_chain(ALICE, "r2", 10, now=later)] == ["r1", "r2"]
    assert store.load_response(ALICE, "other", now=later) is None
    assert store.response_head(ALICE, "r2", now=start + 301) is None


def test_past_the_owners_bound_its_least_recently_continued_responses_go_first(store):
    bounds = ResponseBounds(owner_bytes=1000, total_bytes=10**6, turns=50)
    start = time.time()
    save(store, BOB, "bob", size=300, bounds=bounds)
    for number in range(3):
        assert save(store, ALICE, f"a{number}", size=300, expires=start + 100 + number, bounds=bounds) == 0
    save(store, ALICE, "a3", "a0", size=50, expires=start + 200, bounds=bounds)  # a0 continued: now the newest
    assert save(store, ALICE, "a4", size=400, expires=start + 201, bounds=bounds) == 2
    assert held(store, ALICE, ["a0", "a1", "a2", "a3", "a4"]) == ["a0", "a3", "a4"]
    assert held(store, BOB, ["bob"]) == ["bob"]  # another key's responses are not its bound's


def test_past_the_total_bound_anyones_least_recently_continued_responses_go(store):
    bounds = ResponseBounds(owner_bytes=1000, total_bytes=1000, turns=50)
    start = time.time()
    save(store, BOB, "bob", size=400, expires=start + 100, bounds=bounds)
    save(store, ALICE, "a1", size=400, expires=start + 200, bounds=bounds)
    assert save(store, ALICE, "a2", size=400, expires=start + 300, bounds=bounds) == 1
    assert held(store, BOB, ["bob"]) == []
    assert held(store, ALICE, ["a1", "a2"]) == ["a1", "a2"]


def test_expired_responses_are_never_served_and_their_room_is_taken_back(store):
    bounds = ResponseBounds(owner_bytes=1000, total_bytes=10**6, turns=50)
    start = time.time()
    for number in range(3):
        save(store, ALICE, f"old{number}", size=300, expires=start + 10, bounds=bounds)
    assert store.load_response(ALICE, "old0", now=start + 11) is None
    assert store.delete_response(ALICE, "old1", now=start + 11) is False
    # Written after they expired, nothing needed evicting: the expired ones no longer counted.
    assert store.save_response(ALICE, "new", None, b"x" * 900, b"[]", start + 600, bounds, now=start + 11) == 0
    assert store.load_response(ALICE, "new", now=start + 11) is not None


def test_revoking_a_key_deletes_its_stored_responses_and_gives_their_room_back(store):
    key = store.create_key("alice")
    owner = response_owner("alice", store.digest(key))
    for number in range(1100):  # more than Redis deletes in one go
        save(store, owner, f"mine{number}", size=40)
    save(store, BOB, "bobs", size=50)
    assert held(store, owner, ["mine0", "mine1099"]) == ["mine0", "mine1099"]
    store.revoke("alice")
    assert held(store, owner, ["mine0", "mine550", "mine1099"]) == []
    bounds = ResponseBounds(owner_bytes=10**6, total_bytes=1000, turns=50)
    assert save(store, BOB, "more", size=900, bounds=bounds) == 0  # alice's 44,000 bytes no longer count
    assert held(store, BOB, ["bobs", "more"]) == ["bobs", "more"]


def test_a_record_redis_dropped_at_its_expiry_gives_its_room_back(redis_server):
    redis.Redis.from_url(redis_server.url).flushdb()
    store = open_store(redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    try:
        bounds = ResponseBounds(owner_bytes=1000, total_bytes=10**6, turns=50)
        save(store, ALICE, "short", size=900, expires=time.time() + 0.2, bounds=bounds)
        deadline = time.monotonic() + 10
        while client.exists("swiftchat:response:short") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.exists("swiftchat:response:short")
        assert save(store, ALICE, "next", size=900, bounds=bounds) == 0
        assert float(client.hget("swiftchat:response-bytes", ALICE)) < 1000
    finally:
        store.close()
        client.close()


@pytest.fixture
def responses(store):
    config = Config(responses_key_bytes=20_000, responses_total_bytes=10**6, responses_max_turns=5)
    return ResponsesStore(store, config)


def test_history_is_every_earlier_turns_input_then_output(responses):
    first, second = responses_store.new_id(), responses_store.new_id()
    responses.save(ALICE, *stored(first, "one"))
    responses.save(ALICE, *stored(second, "two", first), previous_response_id=first)
    texts = [item["content"][0]["text"] for item in responses.history(ALICE, second)]
    assert texts == ["one", "re one", "two", "re two"]
    assert responses.history(ALICE, None) == []


def test_history_of_another_keys_response_is_not_found_and_says_nothing_of_it(responses):
    first = responses_store.new_id()
    responses.save(ALICE, *stored(first, "secret words"))
    for asked in (first, "resp_nothing", "x" * 5000):
        with pytest.raises(ApiError) as refused:
            responses.history(BOB, asked)
        assert (refused.value.status, refused.value.code) == (400, "previous_response_not_found")
        assert refused.value.param == "previous_response_id"
        assert "secret" not in refused.value.detail and "alice" not in refused.value.detail


def test_a_conversation_past_its_turns_is_a_clear_400_before_anything_is_read(responses):
    previous = None
    for _ in range(5):
        response_id = responses_store.new_id()
        responses.save(ALICE, *stored(response_id, "turn", previous), previous_response_id=previous)
        previous = response_id
    with pytest.raises(ApiError) as refused:
        responses.history(ALICE, previous)
    assert refused.value.status == 400
    assert "5 responses" in refused.value.detail and "SWIFTCHAT_RESPONSES_MAX_TURNS" in refused.value.detail


def test_a_thousand_turn_chain_cannot_be_built_past_the_default_bound(store):
    responses = ResponsesStore(store, Config())
    previous, refused_at = None, None
    for turn in range(1, 1001):
        try:
            responses.history(ALICE, previous)
        except ApiError as error:
            refused_at = (turn, error.status)
            break
        response_id = responses_store.new_id()
        responses.save(ALICE, *stored(response_id, "t", previous), previous_response_id=previous)
        previous = response_id
    assert refused_at == (Config.responses_max_turns + 1, 400)


def test_a_conversation_larger_than_a_request_body_is_a_clear_400(store):
    config = Config(max_body_bytes=4000, responses_key_bytes=10**6, responses_total_bytes=10**7)
    responses = ResponsesStore(store, config)
    first, second = responses_store.new_id(), responses_store.new_id()
    responses.save(ALICE, *stored(first, "x" * 1200))
    responses.save(ALICE, *stored(second, "y" * 1200, first), previous_response_id=first)
    assert len(responses.history(ALICE, first)) == 2
    with pytest.raises(ApiError) as refused:
        responses.history(ALICE, second)
    assert refused.value.status == 400 and "more than a request may carry" in refused.value.detail


def test_a_response_larger_than_a_key_may_keep_is_refused_with_413(responses):
    response, items = stored(responses_store.new_id(), "z" * 30_000)
    with pytest.raises(ApiError) as refused:
        responses.save(ALICE, response, items)
    assert refused.value.status == 413 and "store: false" in refused.value.detail


def test_a_conversation_with_a_deleted_turn_cannot_be_continued(responses):
    first, second = responses_store.new_id(), responses_store.new_id()
    responses.save(ALICE, *stored(first))
    responses.save(ALICE, *stored(second, "two", first), previous_response_id=first)
    assert responses.delete(ALICE, first) == {"id": first, "object": "response", "deleted": True}
    with pytest.raises(ApiError) as refused:
        responses.history(ALICE, second)
    assert refused.value.code == "previous_response_not_found" and "no longer stored" in refused.value.detail


def test_with_storing_off_nothing_is_kept_and_previous_response_id_is_a_400(store):
    responses = ResponsesStore(store, Config(responses_ttl=0))
    response_id = responses_store.new_id()
    assert responses.enabled is False
    assert responses.save(ALICE, *stored(response_id)) is False
    with pytest.raises(ApiError) as refused:
        responses.history(ALICE, response_id)
    assert refused.value.status == 400 and "SWIFTCHAT_RESPONSES_TTL=0" in refused.value.detail
    with pytest.raises(ApiError) as missing:
        responses.retrieve(ALICE, response_id)
    assert missing.value.status == 404


def test_input_items_are_listed_in_pages_with_ids(responses):
    response, _ = stored(responses_store.new_id())
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": str(n)}]} for n in range(5)]
    responses.save(ALICE, response, items)
    newest = responses.input_items(ALICE, response["id"], limit=2)
    assert [item["content"][0]["text"] for item in newest["data"]] == ["4", "3"]
    assert newest["has_more"] is True and newest["first_id"].startswith("msg_")
    rest = responses.input_items(ALICE, response["id"], limit=10, after=newest["last_id"])
    assert [item["content"][0]["text"] for item in rest["data"]] == ["2", "1", "0"]
    assert rest["has_more"] is False
    oldest = responses.input_items(ALICE, response["id"], limit=1, order="asc")
    assert oldest["data"][0]["content"][0]["text"] == "0"


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(None, 30 * 86400), ("0", 0), ("90", 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800)],
)
def test_the_ttl_setting_takes_seconds_or_a_unit(raw, seconds):
    env = {"API_KEY": "k"} if raw is None else {"API_KEY": "k", "SWIFTCHAT_RESPONSES_TTL": raw}
    assert Config.from_env(env).responses_ttl == seconds


@pytest.mark.parametrize(
    "env",
    [
        {"SWIFTCHAT_RESPONSES_TTL": "d"},
        {"SWIFTCHAT_RESPONSES_TTL": "-1d"},
        {"SWIFTCHAT_RESPONSES_TTL": "a week"},
        {"SWIFTCHAT_RESPONSES_KEY_MB": "0"},
        {"SWIFTCHAT_RESPONSES_MAX_TURNS": "0"},
        {"SWIFTCHAT_RESPONSES_KEY_MB": "200", "SWIFTCHAT_RESPONSES_TOTAL_MB": "100"},
    ],
)
def test_settings_that_cannot_bound_the_store_are_refused_at_start(env):
    with pytest.raises(ConfigError, match="SWIFTCHAT_RESPONSES_"):
        Config.from_env({"API_KEY": "k", **env})

"""Stored responses end to end: gunicorn on SQLite and on a real redis-server, per-person keys made with
the operator's CLI, and the real ``openai`` SDK's responses.create / retrieve / delete / input_items."""

import json
import os
import time
import uuid

import openai
import pytest
import redis
from conftest import TEST_KEY, Server, emulator_calls, emulator_env, flask_keys, metric_value
from redis_fixture import RedisServer, require_redis_server

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PEPPER = "stored-responses test pepper"
METRICS_TOKEN = "scrape-responses-0123456789"
_databases = iter(range(1, 16))  # each Redis deployment its own database of the session's redis-server


class Deployment:
    """A gunicorn server, its store, and the operator's CLI with the same settings."""

    def __init__(self, request, emulator, backend, **settings):
        self.env = {
            **emulator_env(emulator),
            "API_KEY": TEST_KEY,
            "SWIFTCHAT_KEY_PEPPER": PEPPER,
            "METRICS_TOKEN": METRICS_TOKEN,
            "BEDROCK_MAX_ATTEMPTS": "1",
            **settings,
        }
        if backend == "redis":
            url = request.getfixturevalue("redis_server").url.rsplit("/", 1)[0] + f"/{next(_databases)}"
            redis.Redis.from_url(url).flushdb()
            self.env["SWIFTCHAT_STORE"] = url
        self.server = Server(self.env)
        if backend == "sqlite":
            self.env["SWIFTCHAT_STORE"] = f"sqlite:///{self.server.logfile.with_suffix('.db')}"
        self.keys = {"shared": TEST_KEY}
        self._clients = []

    def cli(self, *args):
        done = flask_keys({**os.environ, **self.env}, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def person(self, name=None):
        """A new per-person key's name (made with the CLI, as an operator makes it)."""
        name = name or f"p{uuid.uuid4().hex[:12]}"
        self.keys[name] = self.cli("create", name)
        return name

    def client(self, who):
        sdk = openai.OpenAI(
            base_url=f"http://127.0.0.1:{self.server.port}/v1", api_key=self.keys[who], max_retries=0, timeout=30
        )
        self._clients.append(sdk)
        return sdk

    def metric(self, name):
        status, _, body = self.server.request("/metrics", method="GET", key=METRICS_TOKEN)
        assert status == 200
        return metric_value(body.decode(), name)

    def stop(self):
        for sdk in self._clients:
            sdk.close()
        self.server.stop()


def deployment(request, emulator, **settings):
    made = Deployment(request, emulator, request.param, **settings)
    request.addfinalizer(made.stop)
    return made


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def everyday(request, emulator):
    """The default settings (30 days, the default bounds)."""
    return deployment(request, emulator)


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def short_lived(request, emulator):
    return deployment(request, emulator, SWIFTCHAT_RESPONSES_TTL="2s")


@pytest.fixture(scope="module", params=["sqlite"])
def storing_off(request, emulator):
    return deployment(request, emulator, SWIFTCHAT_RESPONSES_TTL="0")


@pytest.fixture(params=["sqlite", "redis"])
def tight(request, emulator):
    """Bounds small enough to reach: 20 KB a key, 30 KB in all, three responses a conversation."""
    return deployment(
        request,
        emulator,
        SWIFTCHAT_RESPONSES_KEY_MB="0.02",
        SWIFTCHAT_RESPONSES_TOTAL_MB="0.03",
        SWIFTCHAT_RESPONSES_MAX_TURNS="3",
    )


def said(items):
    """The texts of input message items, in the order listed."""
    texts = []
    for item in items:
        content = item.content
        texts.append(content if isinstance(content, str) else "".join(part.text for part in content))
    return texts


def make(sdk, text, **options):
    return sdk.responses.create(model=CLAUDE, input=text, **options)


def padded(text, size):
    """A user's text of about ``size`` bytes that the emulator answers in two words (its reply would quote it)."""
    return f'{text} [[emulator reply="noted."]] ' + "w" * size


def gone(sdk, response_id):
    """Whether the SDK is told the response does not exist (and nothing of it)."""
    try:
        sdk.responses.retrieve(response_id)
    except openai.NotFoundError as error:
        assert error.body["type"] == "not_found_error"
        return True
    return False


def test_the_sdk_retrieves_lists_and_deletes_a_stored_response(everyday):
    alice = everyday.client(everyday.person())
    made = alice.responses.create(
        model=CLAUDE,
        input=[{"role": "user", "content": "first words"}, {"role": "user", "content": "second words"}],
    )
    again = alice.responses.retrieve(made.id)
    assert (again.id, again.output_text, again.status) == (made.id, made.output_text, "completed")
    # One item a page: the SDK follows after= to the end.
    assert said(alice.responses.input_items.list(made.id, limit=1)) == ["second words", "first words"]
    assert said(alice.responses.input_items.list(made.id, order="asc")) == ["first words", "second words"]
    page = alice.responses.input_items.list(made.id, limit=1)
    assert page.has_more is True and page.first_id == page.last_id == page.data[0].id
    assert alice.responses.delete(made.id) is None
    assert gone(alice, made.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.input_items.list(made.id)


def test_a_stored_response_is_answered_as_it_was_answered(everyday):
    key = everyday.keys[everyday.person()]
    status, _, answered = everyday.server.request("/v1/responses", {"model": CLAUDE, "input": "keep me"}, key=key)
    assert status == 200
    made = json.loads(answered)
    status, headers, stored = everyday.server.request(f"/v1/responses/{made['id']}", method="GET", key=key)
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(stored) == made


def test_delete_answers_in_openais_shape(everyday):
    name = everyday.person()
    made = make(everyday.client(name), "to delete")
    status, _, body = everyday.server.request(f"/v1/responses/{made.id}", method="DELETE", key=everyday.keys[name])
    assert (status, json.loads(body)) == (200, {"id": made.id, "object": "response", "deleted": True})


def test_previous_response_id_carries_the_conversation_to_bedrock(everyday, emulator):
    alice = everyday.client(everyday.person())
    first = make(alice, "my name is Ada")
    second = make(alice, "what is my name?", previous_response_id=first.id)
    call = next(call for call in reversed(emulator_calls(emulator)) if "what is my name?" in json.dumps(call["body"]))
    sent = call["body"]["messages"]
    assert [message["role"] for message in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"][0]["text"] == "my name is Ada"
    assert sent[1]["content"][0]["text"] == first.output_text
    assert alice.responses.retrieve(second.id).previous_response_id == first.id


def test_another_key_and_the_shared_key_are_told_it_does_not_exist(everyday):
    owner = everyday.person()
    made = make(everyday.client(owner), "the secret is swordfish")
    for other in (everyday.person(), "shared"):
        sdk = everyday.client(other)
        for attempt in (sdk.responses.retrieve, sdk.responses.delete, sdk.responses.input_items.list):
            with pytest.raises(openai.NotFoundError) as refused:
                attempt(made.id)
            assert "swordfish" not in json.dumps(refused.value.body) and owner not in json.dumps(refused.value.body)
        with pytest.raises(openai.BadRequestError) as refused:
            make(sdk, "continue it", previous_response_id=made.id)
        assert refused.value.code == "previous_response_not_found"
        assert refused.value.param == "previous_response_id"
    assert everyday.client(owner).responses.retrieve(made.id).id == made.id  # nothing the others did touched it


def test_the_shared_keys_responses_are_the_shared_keys_and_no_persons(everyday):
    made = make(everyday.client("shared"), "made with the shared key")
    assert everyday.client("shared").responses.retrieve(made.id).id == made.id
    assert gone(everyday.client(everyday.person()), made.id)


def test_a_revoked_keys_stored_responses_are_served_to_no_one(everyday):
    name = everyday.person()
    revoked = everyday.client(name)
    made = make(revoked, "before the revoke")
    everyday.cli("revoke", name)
    deadline = time.monotonic() + 10  # every worker refuses the key within about a second
    while time.monotonic() < deadline:
        try:  # meanwhile the key is still let in, and finds the response deleted with it
            revoked.responses.retrieve(made.id)
            pytest.fail("a revoked key's response was served")
        except openai.NotFoundError:
            time.sleep(0.05)
        except openai.AuthenticationError:
            break
    else:
        pytest.fail("the revoked key still works")
    everyday.person(name)  # the same name, a new key: not the old key's owner
    for other in (name, "shared"):
        assert gone(everyday.client(other), made.id)
        with pytest.raises(openai.BadRequestError):
            make(everyday.client(other), "continue it", previous_response_id=made.id)


def test_an_unknown_or_malformed_id_is_not_found(everyday):
    for odd in ("resp_" + "0" * 48, "resp_x", "x" * 1000, "resp_" + "A" * 48):
        status, _, body = everyday.server.request(f"/v1/responses/{odd}", method="GET")
        assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("order=sideways", "order"),
        ("include[]=message.output_text.logprobs", "include[][0]"),
        ("starting_after=3", "starting_after"),
    ],
)
def test_bad_paging_is_a_400_naming_the_parameter(everyday, query, param):
    made = make(everyday.client("shared"), "paging")
    status, _, body = everyday.server.request(f"/v1/responses/{made.id}/input_items?{query}", method="GET")
    assert status == 400
    assert json.loads(body)["error"]["param"] == param


def test_retrieve_refuses_to_stream_a_stored_response(everyday):
    made = make(everyday.client("shared"), "whole")
    with pytest.raises(openai.BadRequestError) as refused:
        everyday.client("shared").responses.retrieve(made.id, stream=True)
    assert refused.value.param == "stream"


def test_stored_responses_expire_after_the_ttl(short_lived):
    sdk = short_lived.client(short_lived.person())
    made = make(sdk, "short-lived words")
    assert sdk.responses.retrieve(made.id).id == made.id
    deadline = time.monotonic() + 30
    while not gone(sdk, made.id):
        assert time.monotonic() < deadline, "still served long after its TTL"
        time.sleep(0.1)
    with pytest.raises(openai.BadRequestError) as refused:
        make(sdk, "go on", previous_response_id=made.id)
    assert refused.value.code == "previous_response_not_found"


def test_with_storing_off_nothing_is_kept_and_previous_response_id_is_a_clear_400(storing_off, emulator):
    sdk = storing_off.client("shared")
    made = make(sdk, "not kept")
    assert made.store is False  # the answer says so: store: true was not silently dropped
    assert gone(sdk, made.id)
    calls = len(emulator_calls(emulator))
    with pytest.raises(openai.BadRequestError) as refused:
        make(sdk, "go on", previous_response_id=made.id)
    assert "SWIFTCHAT_RESPONSES_TTL=0" in refused.value.message
    assert refused.value.param == "previous_response_id"
    assert len(emulator_calls(emulator)) == calls  # refused before Bedrock was asked


def test_a_conversation_past_its_turns_is_refused_before_bedrock_is_asked(tight, emulator):
    sdk = tight.client(tight.person())
    previous = None
    for turn in range(3):
        previous = make(sdk, f"turn {turn}", previous_response_id=previous).id
    calls = len(emulator_calls(emulator))
    with pytest.raises(openai.BadRequestError) as refused:
        make(sdk, "one more", previous_response_id=previous)
    assert "3 responses" in refused.value.message and "SWIFTCHAT_RESPONSES_MAX_TURNS" in refused.value.message
    assert len(emulator_calls(emulator)) == calls
    assert sdk.responses.retrieve(previous).id == previous  # what is stored is still served


def test_past_a_keys_bound_its_least_recently_continued_responses_are_evicted(tight):
    name, bystander = tight.person(), tight.person()
    kept = make(tight.client(bystander), "a bystander's words")
    sdk = tight.client(name)
    made = [make(sdk, padded(str(number), 7000)).id for number in range(3)]  # 7 KB and more each, 20 KB a key
    assert gone(sdk, made[0])
    assert [gone(sdk, response_id) for response_id in made[1:]] == [False, False]
    assert not gone(tight.client(bystander), kept.id)  # another key's bound is its own
    assert tight.metric("swiftchat_responses_evicted_total") >= 1


def test_past_the_total_bound_anyones_least_recently_continued_responses_are_evicted(tight):
    first, second = tight.person(), tight.person()
    oldest = make(tight.client(first), padded("o", 9000)).id
    newer = make(tight.client(first), padded("n", 9000)).id
    make(tight.client(second), padded("a", 9000))
    assert not gone(tight.client(first), oldest)
    make(tight.client(second), padded("b", 9000))  # past 30 KB in all: the least recently continued goes
    assert gone(tight.client(first), oldest)
    assert not gone(tight.client(first), newer)


def test_a_response_larger_than_a_key_may_keep_is_answered_unstored_and_says_so(tight):
    sdk = tight.client(tight.person())
    answered = sdk.responses.with_raw_response.create(model=CLAUDE, input=padded("big", 30_000))
    made = answered.parse()
    # Bedrock made and billed it: it is answered, marked as not kept, and the header says why
    assert made.status == "completed" and made.output_text and made.store is False
    assert "not stored" in answered.headers["x-swiftchat-adapted"]
    assert "SWIFTCHAT_RESPONSES_KEY_MB" in answered.headers["x-swiftchat-adapted"]
    assert gone(sdk, made.id)


def test_a_streamed_response_too_large_to_keep_completes_unstored(tight):
    sdk = tight.client(tight.person())
    events = list(sdk.responses.create(model=CLAUDE, input=padded("big", 30_000), stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text and events[-1].response.store is False
    assert gone(sdk, events[-1].response.id)


def test_with_the_store_down_stored_responses_are_a_503_and_come_back_with_it(emulator, tmp_path):
    require_redis_server()
    store = RedisServer(tmp_path).start()
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "SWIFTCHAT_STORE": store.url})
    sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{live.port}/v1", api_key=TEST_KEY, max_retries=0, timeout=30)
    try:
        made = make(sdk, "kept in redis")
        store.stop()
        for attempt in (sdk.responses.retrieve, sdk.responses.delete, sdk.responses.input_items.list):
            with pytest.raises(openai.InternalServerError) as refused:
                attempt(made.id)
            assert refused.value.status_code == 503 and "store cannot be reached" in refused.value.message
        with pytest.raises(openai.InternalServerError):
            make(sdk, "go on", previous_response_id=made.id)
        unstored = make(sdk, "a new conversation")  # Bedrock answers it: it is not lost for want of a store
        assert unstored.status == "completed" and unstored.output_text and unstored.store is False
        store.start()  # the same port, empty (no persistence): answered again, without a restart
        assert gone(sdk, made.id)
        assert sdk.responses.retrieve(make(sdk, "again").id).output_text
    finally:
        sdk.close()
        live.stop()
        store.stop()

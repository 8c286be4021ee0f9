"""The key store in Redis, shared by every instance behind a load balancer.

Whatever must be atomic (making a key, counting a request against the window and the day's
budget, revoking) is one Lua script, so several instances never admit one request too many.
Times are sent as strings and never computed in Lua: Lua prints numbers with 14 significant
digits, which would round a Unix time with microseconds.
"""

import math
import os

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import (
    PEPPER_MISMATCH,
    RESERVATION_SECONDS,
    RESPONSE_PURGE_BATCH,
    WINDOW_SECONDS,
    Identity,
    InvalidRequest,
    KeyInfo,
    NameTaken,
    NoSuchKey,
    PepperMismatch,
    ResponseHead,
    Store,
    StoredResponse,
    StoreUnavailable,
    response_owner,
)

PREFIX = "swiftchat:"
_POOL_SIZE = 64  # connections per process; requests queue for one up to the store's time-out

_CREATE = """#!lua
local stored = redis.call('HGET', KEYS[1], 'pepper')
if stored and stored ~= ARGV[1] then return 'pepper' end
if redis.call('EXISTS', KEYS[2]) == 1 and not redis.call('HGET', KEYS[2], 'revoked') then return 'taken' end
if not stored then redis.call('HSET', KEYS[1], 'pepper', ARGV[1]) end
redis.call('DEL', KEYS[2], KEYS[5])
redis.call('HSET', KEYS[2], 'digest', ARGV[3], 'rpm', ARGV[4], 'tokens_per_day', ARGV[5], 'created', ARGV[6],
  'aws', ARGV[7], 'images_per_day', ARGV[8])
redis.call('HSET', KEYS[3], 'name', ARGV[2], 'rpm', ARGV[4], 'tokens_per_day', ARGV[5], 'aws', ARGV[7],
  'images_per_day', ARGV[8])
redis.call('SADD', KEYS[4], ARGV[2])
return 'ok'
"""

# The shebang makes Redis refuse the whole script, before any of it runs, when it is out of
# memory: without it, a script's first write was let through and the rest ran after it.
# KEYS: window, today's usage, today's reservations, today's images. ARGV: now, window start, rpm,
# tokens per day, unique member, tokens to hold, when the hold expires, images per day (this
# request generates one) or ''.
_ADMIT = """#!lua
local left = nil
if ARGV[4] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  local spent = tonumber(redis.call('HGET', KEYS[2], 'tokens') or '0')
  for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    spent = spent + tonumber(string.match(member, '|(%d+)$'))
  end
  left = tonumber(ARGV[4]) - spent
  if left <= 0 then return {'tokens_per_day'} end
end
if ARGV[8] ~= '' and tonumber(redis.call('GET', KEYS[4]) or '0') >= tonumber(ARGV[8]) then
  return {'images_per_day'}
end
if ARGV[3] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return {'rpm', redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]}
  end
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5])
  redis.call('EXPIRE', KEYS[1], 2 * 60)
end
if ARGV[8] ~= '' then
  redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], 2 * 86400)
end
if left == nil then return {} end
local member = ARGV[5] .. '|' .. string.format('%d', math.min(tonumber(ARGV[6]), left))
redis.call('ZADD', KEYS[3], ARGV[7], member)
redis.call('EXPIRE', KEYS[3], 2 * 86400)
return {'', member}
"""

# Requests written together, in one call. KEYS: the batch's marker, the usage index, then one
# record (name and day) per row, then the reservations each settled one is in; ARGV: the number
# of rows, eight per row, then the reservations' members. A call resent (redis-py, after its
# connection broke, or the recorder, after no reply came) may have run already: the marker
# makes the second run add nothing.
_RECORD = """#!lua
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 3600) then return 0 end
local rows = tonumber(ARGV[1])
for i = 1, rows do
  local at = 1 + (i - 1) * 8
  local key = KEYS[2 + i]
  local model = ARGV[at + 1]
  redis.call('HINCRBY', key, 'r:' .. model, ARGV[at + 2])
  redis.call('HINCRBY', key, 'i:' .. model, ARGV[at + 3])
  redis.call('HINCRBY', key, 'o:' .. model, ARGV[at + 4])
  if ARGV[at + 5] ~= '0' then redis.call('HINCRBY', key, 'ei:' .. model, ARGV[at + 5]) end
  if ARGV[at + 6] ~= '0' then redis.call('HINCRBY', key, 'eo:' .. model, ARGV[at + 6]) end
  redis.call('HINCRBY', key, 'tokens', ARGV[at + 7])
  redis.call('SADD', KEYS[2], ARGV[at + 8])
end
for i = 3 + rows, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[2 + rows * 8 + i - 3 - rows])
end
return 1
"""

# KEYS: the name's record, the key's record, the window. ARGV: digest, then what to set.
_REVOKE = """#!lua
if redis.call('HGET', KEYS[1], 'revoked') or redis.call('HGET', KEYS[1], 'digest') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[1], 'digest')
redis.call('HSET', KEYS[1], 'revoked', ARGV[2])
return 1
"""

_SET_LIMITS = """#!lua
if redis.call('HGET', KEYS[1], 'revoked') or redis.call('HGET', KEYS[1], 'digest') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rpm', ARGV[2], 'tokens_per_day', ARGV[3], 'images_per_day', ARGV[4])
redis.call('HSET', KEYS[2], 'rpm', ARGV[2], 'tokens_per_day', ARGV[3], 'images_per_day', ARGV[4])
return 1
"""


# Stored /v1/responses. ``response:<id>`` is a hash (owner, previous, expires, turns, conversation,
# size, response, items); ``responses`` and ``responses-of:<owner>`` order ids by expiry (least
# recently continued first); ``response-sizes`` keeps "size owner" per id, so the counts in
# ``response-bytes`` (per owner, and under '*' everyone's) are kept right even for a record Redis
# itself dropped at its expiry. Times are compared in Lua, never printed by it.
_FORGET = """
local function forget(gone)
  local where = redis.call('HGET', KEYS[4], gone)
  redis.call('DEL', ARGV[1] .. 'response:' .. gone)
  redis.call('ZREM', KEYS[1], gone)
  redis.call('ZREM', KEYS[2], gone)
  redis.call('HDEL', KEYS[4], gone)
  if where then
    local size, owner = string.match(where, '^(%d+) (.+)$')
    redis.call('ZREM', ARGV[1] .. 'responses-of:' .. owner, gone)
    if redis.call('HINCRBY', KEYS[3], owner, -tonumber(size)) <= 0 then redis.call('HDEL', KEYS[3], owner) end
    redis.call('HINCRBY', KEYS[3], '*', -tonumber(size))
  end
end
"""

# KEYS: every response by expiry, the owner's by expiry, the byte counts, the sizes, the record.
# ARGV: prefix, owner, id, previous or '', now, expires, expires in whole ms, size, owner's bytes,
# everyone's bytes, turns, purge batch, response, items.
_SAVE_RESPONSE = (
    "#!lua\n"
    + _FORGET
    + """
local owner, id, previous, now, size = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[8])
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[5], 'LIMIT', 0, tonumber(ARGV[12]))) do
  forget(gone)
end
local same = redis.call('HGET', KEYS[4], id)
if same then
  if string.match(same, '^%d+ (.+)$') ~= owner then return -1 end
  forget(id)
end
local turns, conversation = 1, size
if previous ~= '' then
  local head = redis.call('HMGET', ARGV[1] .. 'response:' .. previous, 'owner', 'expires', 'turns', 'conversation')
  if head[1] == owner and tonumber(head[2]) > now then
    turns, conversation = tonumber(head[3]) + 1, tonumber(head[4]) + size
    local link = previous
    for _ = 1, tonumber(ARGV[11]) do
      local record = ARGV[1] .. 'response:' .. link
      local found = redis.call('HMGET', record, 'owner', 'previous')
      if found[1] ~= owner then break end
      redis.call('HSET', record, 'expires', ARGV[6])
      redis.call('PEXPIREAT', record, ARGV[7])
      redis.call('ZADD', KEYS[1], ARGV[6], link)
      redis.call('ZADD', KEYS[2], ARGV[6], link)
      if found[2] == '' then break end
      link = found[2]
    end
  end
end
local evicted = 0
for _, bound in ipairs({{KEYS[2], owner, tonumber(ARGV[9])}, {KEYS[1], '*', tonumber(ARGV[10])}}) do
  while tonumber(redis.call('HGET', KEYS[3], bound[2]) or '0') + size > bound[3] do
    local oldest = redis.call('ZRANGE', bound[1], 0, 0)[1]
    if not oldest then break end
    forget(oldest)
    evicted = evicted + 1
  end
end
redis.call('HSET', KEYS[5], 'owner', owner, 'previous', previous, 'expires', ARGV[6], 'turns', tostring(turns),
  'conversation', tostring(conversation), 'size', ARGV[8], 'response', ARGV[13], 'items', ARGV[14])
redis.call('PEXPIREAT', KEYS[5], ARGV[7])
redis.call('ZADD', KEYS[1], ARGV[6], id)
redis.call('ZADD', KEYS[2], ARGV[6], id)
redis.call('HSET', KEYS[4], id, ARGV[8] .. ' ' .. owner)
redis.call('HINCRBY', KEYS[3], owner, ARGV[8])
redis.call('HINCRBY', KEYS[3], '*', ARGV[8])
return evicted
"""
)

# ARGV: prefix, owner, now, id, at most how many. Newest first, up to the first one missing.
_RESPONSE_CHAIN = """#!lua flags=no-writes
local found, link = {}, ARGV[4]
for _ = 1, tonumber(ARGV[5]) do
  local r = redis.call('HMGET', ARGV[1] .. 'response:' .. link, 'owner', 'expires', 'previous', 'response', 'items')
  if r[1] ~= ARGV[2] or tonumber(r[2]) <= tonumber(ARGV[3]) then break end
  found[#found + 1] = {link, r[3], r[4], r[5]}
  if r[3] == '' then break end
  link = r[3]
end
return found
"""

# KEYS as for a save; ARGV: prefix, owner, id, now. 1 if it was the owner's and not expired.
_DELETE_RESPONSE = (
    "#!lua\n"
    + _FORGET
    + """
local found = redis.call('HMGET', ARGV[1] .. 'response:' .. ARGV[3], 'owner', 'expires')
local where = redis.call('HGET', KEYS[4], ARGV[3])
if not where or string.match(where, '^%d+ (.+)$') ~= ARGV[2] then return 0 end
forget(ARGV[3])
if found[1] == ARGV[2] and tonumber(found[2]) > tonumber(ARGV[4]) then return 1 end
return 0
"""
)


# KEYS as for a save; ARGV: prefix, how many at most. Deletes that many of one owner's responses.
_FORGET_OWNER = (
    "#!lua\n"
    + _FORGET
    + """
local gone = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(gone) do forget(id) end
return #gone
"""
)
_FORGET_BATCH = 500  # responses deleted per script call: Redis serves no one else while one runs


def _limit_text(value):
    return "" if value is None else str(value)


def _limit(text):
    return int(text) if text else None


class RedisStore(Store):
    """Keys, limits and usage in Redis (``redis://host:port/db``, ``rediss://...``), under ``swiftchat:``."""

    needs_secret_pepper = True

    def __init__(self, url, **options):
        super().__init__(url, **options)
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=_POOL_SIZE,
            timeout=self.timeout,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            # One immediate retry on a broken connection (a pooled socket from before a Redis
            # restart); none on a time-out, and no back-off: a store that is down answers fast.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            decode_responses=True,
        )
        self._redis = redis.Redis(connection_pool=pool)
        self._create_script = self._redis.register_script(_CREATE)
        self._admit_script = self._redis.register_script(_ADMIT)
        self._record_script = self._redis.register_script(_RECORD)
        self._revoke_script = self._redis.register_script(_REVOKE)
        self._set_limits_script = self._redis.register_script(_SET_LIMITS)
        self._save_response_script = self._redis.register_script(_SAVE_RESPONSE)
        self._response_chain_script = self._redis.register_script(_RESPONSE_CHAIN)
        self._delete_response_script = self._redis.register_script(_DELETE_RESPONSE)
        self._forget_owner_script = self._redis.register_script(_FORGET_OWNER)

    def _call(self, work):
        try:
            return work(self._redis)
        except redis.RedisError as error:
            raise StoreUnavailable(f"The key store cannot be used: {type(error).__name__}: {error}") from None

    def probe(self):
        """Write a marker that expires by itself: a read-only replica or a full Redis refuses it."""
        try:
            self._redis.set(PREFIX + "ready-probe", "1", ex=60)
        except redis.RedisError as error:  # the cause (hosts, ports) is for the log, not for /readyz
            raise StoreUnavailable(f"The key store cannot be used: {type(error).__name__}.") from error

    def close(self):
        """Close this process's connections."""
        self._redis.connection_pool.disconnect()  # Redis.close() leaves a pool it was given open

    def _create(self, name, digest, limits, created, fingerprint, aws_credentials):
        rpm, tokens_per_day, images_per_day = limits
        keys = [PREFIX + "meta", PREFIX + "name:" + name, PREFIX + "key:" + digest, PREFIX + "names"]
        keys.append(PREFIX + "hits:" + name)
        args = [fingerprint, name, digest, _limit_text(rpm), _limit_text(tokens_per_day), repr(created)]
        args += ["1" if aws_credentials else "", _limit_text(images_per_day)]
        answer = self._call(lambda r: self._create_script(keys=keys, args=args))
        if answer == "pepper":
            raise PepperMismatch(PEPPER_MISMATCH)
        if answer == "taken":
            raise NameTaken(f"A key named {name} exists; revoke it first to give {name} a new one.")

    def _lookup(self, digest):
        record = self._call(lambda r: r.hgetall(PREFIX + "key:" + digest))
        if not record:
            return None
        return Identity(
            record["name"],
            _limit(record.get("rpm")),
            _limit(record.get("tokens_per_day")),
            record.get("aws") == "1",
            _limit(record.get("images_per_day")),
        )

    def _admit(self, identity, now, day, reserve, image):
        keys = [
            PREFIX + "hits:" + identity.name,
            PREFIX + f"usage:{identity.name}:{day}",
            PREFIX + f"reserved:{identity.name}:{day}",
            PREFIX + f"images:{identity.name}:{day}",
        ]
        args = [
            repr(now),
            repr(now - WINDOW_SECONDS),
            _limit_text(identity.rpm),
            _limit_text(identity.tokens_per_day),
            f"{now!r}:{os.urandom(6).hex()}",  # a sorted set keeps one entry per member
            str(reserve),
            repr(now + RESERVATION_SECONDS),
            _limit_text(identity.images_per_day) if image else "",
        ]
        answer = self._call(lambda r: self._admit_script(keys=keys, args=args))
        if not answer:
            return None, None, None
        if answer[0] == "":
            return None, None, f"{identity.name}:{day} {answer[1]}"
        return answer[0], float(answer[1]) if len(answer) > 1 else None, None

    def _record(self, rows, settled, batch):
        keys = [PREFIX + f"usage-batch:{batch}", PREFIX + "usage-index"]
        args = [len(rows)]
        for name, day, model, requests, input_tokens, output_tokens, estimated_input, estimated_output in rows:
            keys.append(PREFIX + f"usage:{name}:{day}")
            args += [model, requests, input_tokens, output_tokens, estimated_input, estimated_output]
            args += [input_tokens + output_tokens, f"{name} {day}"]
        for reservation in settled:
            where, _, member = reservation.partition(" ")
            keys.append(PREFIX + f"reserved:{where}")
            args.append(member)
        self._call(lambda r: self._record_script(keys=keys, args=args))

    def _usage_rows(self, since):
        def work(r):
            entries = sorted(entry.split(" ", 1) for entry in r.smembers(PREFIX + "usage-index"))
            entries = [(name, day) for name, day in entries if day >= (since or "")]
            pipe = r.pipeline(transaction=False)
            for name, day in entries:
                pipe.hgetall(PREFIX + f"usage:{name}:{day}")
            return zip(entries, pipe.execute(), strict=True)

        rows = []
        for (name, day), fields in self._call(work):
            for field, value in fields.items():
                kind, _, model = field.partition(":")
                if kind == "r":
                    figures = (int(fields.get(f"{figure}:{model}", 0)) for figure in ("i", "o", "ei", "eo"))
                    rows.append((name, day, model, int(value), *figures))
        return rows

    def _list(self):
        def work(r):
            names = sorted(r.smembers(PREFIX + "names"))
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(PREFIX + "name:" + name)
            return zip(names, pipe.execute(), strict=True)

        return [
            KeyInfo(
                name,
                _limit(record.get("rpm")),
                _limit(record.get("tokens_per_day")),
                float(record.get("created", 0)),
                float(record["revoked"]) if record.get("revoked") else None,
                record.get("aws") == "1",
                _limit(record.get("images_per_day")),
            )
            for name, record in self._call(work)
            if record
        ]

    def _active_digest(self, name):
        digest = self._call(lambda r: r.hget(PREFIX + "name:" + name, "digest"))
        if not digest:
            raise NoSuchKey(f"No active key is named {name}.")
        return digest

    def _revoke(self, name, now):
        digest = self._active_digest(name)
        keys = [PREFIX + "name:" + name, PREFIX + "key:" + digest, PREFIX + "hits:" + name]
        if not self._call(lambda r: self._revoke_script(keys=keys, args=[digest, repr(now)])):
            raise NoSuchKey(f"No active key is named {name}.")  # revoked or replaced meanwhile
        # No key will ever read them again.
        forget = self._response_keys(response_owner(name, digest), "")
        while self._call(lambda r: self._forget_owner_script(keys=forget, args=[PREFIX, _FORGET_BATCH])):
            pass

    def _set_limits(self, name, limits):
        digest = self._active_digest(name)
        keys = [PREFIX + "name:" + name, PREFIX + "key:" + digest]
        args = [digest, *(_limit_text(limit) for limit in limits)]
        if not self._call(lambda r: self._set_limits_script(keys=keys, args=args)):
            raise NoSuchKey(f"No active key is named {name}.")

    def _stored_fingerprint(self):
        return self._call(lambda r: r.hget(PREFIX + "meta", "pepper"))

    def _response_keys(self, owner, response_id):
        return [
            PREFIX + "responses",
            PREFIX + "responses-of:" + owner,
            PREFIX + "response-bytes",
            PREFIX + "response-sizes",
            PREFIX + "response:" + response_id,
        ]

    def _save_response(self, owner, response_id, previous, response, items, now, expires, bounds):
        args = [PREFIX, owner, response_id, previous, repr(now), repr(expires), str(math.ceil(expires * 1000))]
        args += [str(len(response) + len(items)), str(bounds.owner_bytes), str(bounds.total_bytes)]
        args += [str(bounds.turns), str(RESPONSE_PURGE_BATCH), response, items]
        keys = self._response_keys(owner, response_id)
        evicted = self._call(lambda r: self._save_response_script(keys=keys, args=args))
        if evicted < 0:
            raise InvalidRequest("Another owner has a stored response with this id.")
        return evicted

    def _response_fields(self, owner, response_id, now, *fields):
        found = self._call(lambda r: r.hmget(PREFIX + "response:" + response_id, "owner", "expires", *fields))
        if found[0] != owner or float(found[1]) <= now:
            return None
        return found[2:]

    def _response_head(self, owner, response_id, now):
        found = self._response_fields(owner, response_id, now, "turns", "conversation")
        return None if found is None else ResponseHead(int(found[0]), int(found[1]))

    def _response_chain(self, owner, response_id, now, turns):
        args = [PREFIX, owner, repr(now), response_id, str(turns)]
        found = self._call(lambda r: self._response_chain_script(keys=[], args=args))
        return [StoredResponse(link, previous or None, response, items) for link, previous, response, items in found]

    def _load_response(self, owner, response_id, now):
        found = self._response_fields(owner, response_id, now, "previous", "response", "items")
        return None if found is None else StoredResponse(response_id, found[0] or None, found[1], found[2])

    def _delete_response(self, owner, response_id, now):
        keys = self._response_keys(owner, response_id)
        args = [PREFIX, owner, response_id, repr(now)]
        return bool(self._call(lambda r: self._delete_response_script(keys=keys, args=args)))

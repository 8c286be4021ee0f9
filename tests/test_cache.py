"""The shared TTL cache: one computation per miss, and bounded however many keys callers invent."""

import pytest

from swiftchat_api.cache import TTLCache


def test_a_hit_is_not_computed_again():
    cache, calls = TTLCache(60), []
    assert cache.get("us-west-2", lambda: calls.append(1) or "models") == "models"
    assert cache.get("us-west-2", lambda: calls.append(1) or "other") == "models"
    assert len(calls) == 1


def test_made_up_keys_evict_the_oldest_instead_of_growing():
    cache, calls = TTLCache(60), []
    for i in range(TTLCache.MAX_ENTRIES + 50):
        cache.get(f"zz-fake-{i}", lambda: calls.append(1) or "x")
    assert len(cache._entries) == TTLCache.MAX_ENTRIES and not cache._locks
    cache.get("zz-fake-0", lambda: calls.append(1) or "x")  # long evicted: computed anew
    assert len(calls) == TTLCache.MAX_ENTRIES + 51


def test_a_failure_is_not_cached():
    cache = TTLCache(60)
    with pytest.raises(ZeroDivisionError):
        cache.get("k", lambda: 1 / 0)
    assert cache.get("k", lambda: "fine") == "fine"

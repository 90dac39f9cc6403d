from __future__ import annotations

from engine._backoff import RateLimitState
from engine._config import API_LIMITS, RESOLVE_LIMITS, HostLimits
from engine._ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_burst_passes_then_rate_applies() -> None:
    clock = Clock()
    bucket = TokenBucket(HostLimits(rate_per_s=10, burst=5), clock)
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5
    assert bucket.reserve() == 0.1
    assert bucket.reserve() == 0.2  # queued behind the previous caller
    clock.t += 1.0
    assert bucket.reserve() == 0.0


def test_pause_holds_every_caller_of_the_host() -> None:
    clock = Clock()
    bucket = TokenBucket(HostLimits(rate_per_s=100, burst=100), clock)
    bucket.pause(30)
    assert bucket.reserve() == 30.0
    clock.t += 30
    assert bucket.reserve() == 0.0


def test_server_counters_slow_the_bucket_before_a_429() -> None:
    clock = Clock()
    bucket = TokenBucket(HostLimits(rate_per_s=10, burst=1000), clock)
    # 20 requests left for 100 s: never more than 20 at once, then 0.2 per second.
    assert bucket.observe(RateLimitState("api", 20, 100.0)) == 0.0
    waits = [bucket.reserve() for _ in range(21)]
    assert waits[:20] == [0.0] * 20
    assert waits[20] == 5.0
    assert bucket.rate == 0.2
    clock.t += 101
    bucket.reserve()
    assert bucket.rate == 10  # back to the default once the window has reset


def test_exhausted_window_pauses_until_reset() -> None:
    clock = Clock()
    bucket = TokenBucket(HostLimits(rate_per_s=10, burst=10), clock)
    assert bucket.observe(RateLimitState("resolvers", 0, 42.0)) == 42.0
    assert bucket.reserve() >= 42.0


def test_defaults_allow_a_burst_of_small_files_and_stay_in_the_window() -> None:
    # 2 000 small files start at once; a five-minute window never sees more than twice the quota.
    assert RESOLVE_LIMITS.burst >= 2000
    assert RESOLVE_LIMITS.rate_per_s * 300 <= 3000
    assert API_LIMITS.rate_per_s * 300 <= 500


def test_byte_budget_of_max_rate() -> None:
    from engine._download import _rate_bucket

    assert _rate_bucket(None) is None
    rate = 2 * 1024 * 1024
    clock = Clock()
    bucket = _rate_bucket(rate, clock)
    assert bucket is not None
    # The first second moves no more than the cap plus 1/20 s of lending.
    free = rate // 20
    assert bucket.reserve(free) == 0.0
    assert bucket.reserve(rate) == 1.0
    # A block far bigger than the bucket holds is granted as debt, paid for by the wait.
    clock.t += 1.0
    assert bucket.reserve(512 * 1024) == 0.25

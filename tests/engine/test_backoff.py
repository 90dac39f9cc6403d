from __future__ import annotations

from engine._backoff import backoff_delay, is_retryable_status, parse_ratelimit, parse_retry_after
from engine._config import RetryPolicy


def test_schedule_doubles_from_one_second_and_caps_at_sixty() -> None:
    policy = RetryPolicy()
    mid = [backoff_delay(a, policy, rng=lambda: 0.5) for a in range(1, 9)]
    assert mid == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_jitter_stays_within_twenty_percent() -> None:
    policy = RetryPolicy()
    assert backoff_delay(3, policy, rng=lambda: 0.0) == 4.0 * 0.8
    assert backoff_delay(3, policy, rng=lambda: 1.0) == 4.0 * 1.2


def test_only_429_and_transient_5xx_are_retryable() -> None:
    assert [
        s for s in (400, 401, 403, 404, 408, 409, 416, 429, 500, 501, 502, 503, 504) if is_retryable_status(s)
    ] == [
        429,
        500,
        502,
        503,
        504,
    ]


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", now=lambda: now) == 20.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=lambda: now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_ratelimit_headers_of_the_hub() -> None:
    state = parse_ratelimit('"api";r=499;t=295', '"fixed window";"api";q=500;w=300')
    assert state is not None
    assert (state.name, state.remaining, state.reset_s, state.quota, state.window_s) == (
        "api",
        499,
        295.0,
        500,
        300.0,
    )
    assert parse_ratelimit('"resolvers";r=0;t=12', None) is not None
    assert parse_ratelimit("garbage", None) is None
    assert parse_ratelimit(None, None) is None

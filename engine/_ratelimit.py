"""Per-host request budget: token-bucket arithmetic and the async acquire that sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from engine._backoff import RateLimitState
from engine._config import HostLimits


class TokenBucket:
    """Let through `rate` requests per second to one host, with bursts of up to `burst`.

    `reserve()` only does arithmetic and returns the seconds the caller must wait. A host-wide
    pause (Retry-After) and the server's own RateLimit counters both move the same bucket, so
    every task of a run slows down together.
    """

    def __init__(self, limits: HostLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._base_rate, self._burst, self._clock = limits.rate_per_s, float(limits.burst), clock
        self._rate = self._base_rate
        self._tokens, self._stamp = self._burst, clock()
        self._paused_until = 0.0
        self._slow_until = 0.0

    @property
    def rate(self) -> float:
        return self._rate

    def _refill(self, now: float) -> None:
        if self._slow_until and now >= self._slow_until:
            self._rate, self._slow_until = self._base_rate, 0.0
        start = max(self._stamp, self._paused_until)
        if now > start:
            self._tokens = min(self._burst, self._tokens + (now - start) * self._rate)
        self._stamp = max(now, self._stamp)

    def reserve(self, cost: float = 1.0) -> float:
        now = self._clock()
        self._refill(now)
        self._tokens -= cost
        wait_pause = max(0.0, self._paused_until - now)
        # A negative balance means earlier callers already hold future tokens; queue behind them.
        wait_tokens = max(0.0, -self._tokens / self._rate)
        return wait_pause + wait_tokens

    def pause(self, delay_s: float) -> None:
        """Stop the whole host for `delay_s` (Retry-After); waiting callers queue behind it."""
        now = self._clock()
        self._refill(now)
        self._paused_until = max(self._paused_until, now + delay_s)

    def observe(self, state: RateLimitState) -> float:
        """Follow the server's counters; return the pause it implies (0 when there is room).

        With `r` requests left for `t` seconds, never hold more than `r` tokens, and spread the
        rest evenly over the window instead of bursting into a 429.
        """
        now = self._clock()
        self._refill(now)
        self._tokens = min(self._tokens, float(state.remaining))
        if state.remaining <= 0:
            self.pause(state.reset_s)
            return state.reset_s
        if state.reset_s > 0:
            spread = state.remaining / state.reset_s
            if spread < self._rate:
                self._rate, self._slow_until = spread, now + state.reset_s
        return 0.0


async def acquire(bucket: TokenBucket, cost: float = 1.0) -> None:
    """Wait until `bucket` lets one more request through."""
    if delay := bucket.reserve(cost):
        await anyio.sleep(delay)

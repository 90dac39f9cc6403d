"""Pure retry arithmetic: what is retryable, how long to wait, and header parsing."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import NamedTuple

from engine._config import RetryPolicy

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_retryable_status(status: int) -> bool:
    """429 and the transient 5xx are retried; every other 4xx is the caller's problem."""
    return status in RETRYABLE_STATUSES


def backoff_delay(attempt: int, policy: RetryPolicy, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `attempt` (1-based): base * 2**(attempt-1), jittered, capped."""
    raw = policy.base_s * (2 ** (attempt - 1))
    jittered = raw * (1.0 + policy.jitter * (2.0 * rng() - 1.0))
    return float(max(0.0, min(policy.cap_s, jittered)))


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    # The email package costs ~10 ms to import: only when a server sends the date form.
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


class RateLimitState(NamedTuple):
    """One `RateLimit` header: `remaining` requests left, window resets in `reset_s`."""

    name: str
    remaining: int
    reset_s: float
    quota: int | None = None
    window_s: float | None = None


_PARAM = re.compile(r';\s*([a-z]+)\s*=\s*"?([0-9.]+)"?')


def _params(text: str) -> tuple[str, dict[str, float]]:
    name = text.split(";", 1)[0].strip().strip('"')
    return name, {k: float(v) for k, v in _PARAM.findall(text)}


def parse_ratelimit(header: str | None, policy: str | None = None) -> RateLimitState | None:
    """Parse `RateLimit: "api";r=499;t=295` (+ `RateLimit-Policy: "fixed window";"api";q=500;w=300`)."""
    if not header:
        return None
    name, values = _params(header)
    if "r" not in values or "t" not in values:
        return None
    quota = window = None
    if policy:
        for item in policy.split(","):
            # The policy names its bucket after the window type: '"fixed window";"api";q=..;w=..'
            fields = [f.strip().strip('"') for f in item.split(";")]
            _, pvalues = _params(item.split(";", 1)[-1]) if ";" in item else ("", {})
            if name in fields and "q" in pvalues:
                quota = int(pvalues["q"])
                window = pvalues.get("w")
    return RateLimitState(name, int(values["r"]), values["t"], quota, window)

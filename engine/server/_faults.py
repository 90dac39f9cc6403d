"""Test-only server behaviour (fault switches), request counters and the rate limiter.

All state here is shared between the server's event loop and the thread of a test that
flips switches, so every mutation happens under a `threading.Lock` and nothing awaits while
holding it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

from engine._config import HostLimits
from engine._ratelimit import TokenBucket

WRITE_KINDS = frozenset(
    {
        "repo-create",
        "repo-delete",
        "preupload",
        "lfs-batch",
        "lfs-verify",
        "upload",
        "commit",
        "branch",
        "tag",
        "discussion-create",
    }
)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it."""

    method: str
    kind: str  # list, info, tree, resolve, blob, upload, commit, admin, ... (see LAYOUT.md)
    path: str  # decoded path, no query
    target: str  # raw path with query string
    range: str | None
    authorized: bool  # carried an Authorization header
    status: int = 0


@dataclass(frozen=True, slots=True)
class HubStats:
    """Counters since start or the last reset."""

    total: int = 0
    by_route: Mapping[str, int] = field(default_factory=dict)  # "GET resolve" -> n
    by_path: Mapping[str, int] = field(default_factory=dict)  # "/acme/tiny/resolve/main/x" -> n
    blob_bytes_sent: int = 0
    resolve_bytes_sent: int = 0
    upload_bytes_received: int = 0
    blob_requests_with_auth: int = 0
    faults_fired: Mapping[str, int] = field(default_factory=dict)  # "429", "503", "truncate", ...
    requests: tuple[RequestRecord, ...] = ()

    def count(self, kind: str | None = None, method: str | None = None) -> int:
        """Requests of a route kind (`"write"` = every write route) and/or an HTTP method."""
        n = 0
        for key, v in self.by_route.items():
            m, k = key.split(" ", 1)
            if (kind is None or k == kind or (kind == "write" and k in WRITE_KINDS)) and method in (None, m):
                n += v
        return n

    @property
    def writes(self) -> int:
        return self.count("write")

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["requests"] = [asdict(r) for r in self.requests]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> HubStats:
        def ints(key: str) -> dict[str, int]:
            raw = data.get(key)
            return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

        def num(key: str) -> int:
            v = data.get(key, 0)
            return int(v) if isinstance(v, int | float) else 0

        reqs = data.get("requests")
        return cls(
            total=num("total"),
            by_route=ints("by_route"),
            by_path=ints("by_path"),
            blob_bytes_sent=num("blob_bytes_sent"),
            resolve_bytes_sent=num("resolve_bytes_sent"),
            upload_bytes_received=num("upload_bytes_received"),
            blob_requests_with_auth=num("blob_requests_with_auth"),
            faults_fired=ints("faults_fired"),
            requests=tuple(RequestRecord(**r) for r in reqs if isinstance(r, dict))
            if isinstance(reqs, list)
            else (),
        )


class Stats:
    """Mutable counters behind HubStats."""

    def __init__(self, log_size: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._log_size = log_size
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._by_route: Counter[str] = Counter()
            self._by_path: Counter[str] = Counter()
            self._bytes: Counter[str] = Counter()
            self._blob_auth = 0
            self._fired: Counter[str] = Counter()
            self._log: deque[list[object]] = deque(maxlen=self._log_size)

    def begin(
        self, method: str, kind: str, path: str, target: str, range_: str | None, authorized: bool
    ) -> list[object]:
        """Count a request; return its log row for `finish`."""
        with self._lock:
            self._total += 1
            self._by_route[f"{method} {kind}"] += 1
            self._by_path[path] += 1
            if kind == "blob" and authorized:
                self._blob_auth += 1
            row: list[object] = [method, kind, path, target, range_, authorized, 0]
            self._log.append(row)
            return row

    def finish(self, row: list[object], status: int) -> None:
        with self._lock:
            row[6] = status  # harmless if a reset or the size bound already dropped the row

    def sent(self, kind: str, n: int) -> None:
        with self._lock:
            self._bytes[kind] += n

    def fired(self, what: str) -> None:
        with self._lock:
            self._fired[what] += 1

    def snapshot(self) -> HubStats:
        with self._lock:
            return HubStats(
                total=self._total,
                by_route=dict(self._by_route),
                by_path=dict(self._by_path),
                blob_bytes_sent=self._bytes["blob"],
                resolve_bytes_sent=self._bytes["resolve"],
                upload_bytes_received=self._bytes["upload"],
                blob_requests_with_auth=self._blob_auth,
                faults_fired=dict(self._fired),
                requests=tuple(RequestRecord(*r) for r in self._log),  # type: ignore[arg-type]
            )


def byte_bucket(rate: float) -> TokenBucket:
    """`rate` bytes per second shared by many senders, with a burst of 1/20 s (at least 64 KiB)."""
    return TokenBucket(HostLimits(rate_per_s=rate, burst=int(max(rate / 20, 64 * 1024))))


@dataclass(frozen=True, slots=True)
class BodyFaults:
    """What to do to one response body (all None/0: send it straight)."""

    truncate_after: int | None = None
    flip_offset: int | None = None
    stall_after: int | None = None
    stall_s: float = 0.0
    per_conn_bytes_s: float | None = None
    latency_s: float = 0.0
    aggregate: TokenBucket | None = None

    @property
    def active(self) -> bool:
        return (
            self.truncate_after is not None
            or self.flip_offset is not None
            or self.stall_after is not None
            or self.per_conn_bytes_s is not None
            or self.latency_s > 0
            or self.aggregate is not None
        )


@dataclass(slots=True)
class _Rule:
    kind: str  # "fail", "truncate", "flip", "stall"
    path_contains: str | None
    times: int = 1
    status: int = 0
    retry_after: str | None = None
    after_bytes: int = 0
    seconds: float = 0.0
    offset: int = 0

    def applies(self, target: str) -> bool:
        return self.times > 0 and (self.path_contains is None or self.path_contains in target)


class FaultState:
    """The switches a test flips (directly, or through the `/_batuta/faults` admin route)."""

    def __init__(self, on_fire: Callable[[str], None] = lambda what: None) -> None:
        self._lock = threading.Lock()
        self._on_fire = on_fire
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._rules: list[_Rule] = []
            self._expire = 0
            self._per_conn: float | None = None
            self._latency = 0.0
            self._api_latency = 0.0
            self._aggregate: TokenBucket | None = None

    def fail(
        self, *, status: int, times: int, path_contains: str | None = None, retry_after: str | None = None
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"status {status} is not an error status")
        with self._lock:
            # JSON callers may send a number: a header value is text.
            after = None if retry_after is None else str(retry_after)
            self._rules.append(_Rule("fail", path_contains, times, status=status, retry_after=after))

    def throttle(
        self,
        *,
        per_conn_bytes_s: float | None = None,
        latency_s: float = 0.0,
        aggregate_bytes_s: float | None = None,
        api_latency_s: float = 0.0,
    ) -> None:
        """Blob downloads: per-connection and aggregate caps, `latency_s` before the first byte.

        `api_latency_s` delays every request on the API listener (a round trip to a distant Hub),
        which is what makes many small files slow for one-request-at-a-time clients.
        """
        with self._lock:
            self._per_conn = per_conn_bytes_s
            self._latency = latency_s
            self._api_latency = api_latency_s
            self._aggregate = byte_bucket(aggregate_bytes_s) if aggregate_bytes_s else None

    @property
    def api_latency_s(self) -> float:
        return self._api_latency

    def truncate_once(self, *, after_bytes: int, path_contains: str | None = None) -> None:
        with self._lock:
            self._rules.append(_Rule("truncate", path_contains, after_bytes=after_bytes))

    def flip_byte_once(self, *, path_contains: str | None = None, offset: int = 0) -> None:
        with self._lock:
            self._rules.append(_Rule("flip", path_contains, offset=offset))

    def stall_once(self, *, after_bytes: int, seconds: float, path_contains: str | None = None) -> None:
        with self._lock:
            self._rules.append(_Rule("stall", path_contains, after_bytes=after_bytes, seconds=seconds))

    def expire_signatures(self, times: int = 1) -> None:
        with self._lock:
            self._expire += times

    # ---- used by the server ----------------------------------------------------------------
    def _take(self, kind: str, target: str) -> _Rule | None:
        """Consume one use of the first `kind` rule that matches `target`."""
        with self._lock:
            for rule in self._rules:
                if rule.kind == kind and rule.applies(target):
                    rule.times -= 1
                    return rule
        return None

    def take_failure(self, target: str) -> tuple[int, str | None] | None:
        """Consume one matching `fail` rule: (status, Retry-After value) or None."""
        if (rule := self._take("fail", target)) is None:
            return None
        self._on_fire(str(rule.status))
        return rule.status, rule.retry_after

    def take_expired(self) -> bool:
        with self._lock:
            if self._expire <= 0:
                return False
            self._expire -= 1
        self._on_fire("expired")
        return True

    def take_truncate(self, target: str) -> int | None:
        """Consume a matching truncate rule (for request bodies of uploads)."""
        if (rule := self._take("truncate", target)) is None:
            return None
        self._on_fire("truncate")
        return rule.after_bytes

    def body_faults(self, target: str, *, throttled: bool) -> BodyFaults:
        """Consume the once-rules that match this response body; add the blob throttle if asked."""
        picked: dict[str, _Rule] = {}
        with self._lock:
            for rule in self._rules:
                if (
                    rule.kind in ("truncate", "flip", "stall")
                    and rule.kind not in picked
                    and rule.applies(target)
                ):
                    rule.times -= 1
                    picked[rule.kind] = rule
            t, f, s = picked.get("truncate"), picked.get("flip"), picked.get("stall")
            faults = BodyFaults(
                truncate_after=t.after_bytes if t else None,
                flip_offset=f.offset if f else None,
                stall_after=s.after_bytes if s else None,
                stall_s=s.seconds if s else 0.0,
                per_conn_bytes_s=self._per_conn if throttled else None,
                latency_s=self._latency if throttled else 0.0,
                aggregate=self._aggregate if throttled else None,
            )
        for kind in picked:
            self._on_fire(kind)
        return faults

    def apply_json(self, data: Mapping[str, object]) -> None:
        """Apply one admin request: `{"fail": {...}}`, `{"throttle": {...}}`, ... (see LAYOUT.md)."""
        for key, fn in (
            ("fail", self.fail),
            ("throttle", self.throttle),
            ("truncate_once", self.truncate_once),
            ("flip_byte_once", self.flip_byte_once),
            ("stall_once", self.stall_once),
            ("expire_signatures", self.expire_signatures),
        ):
            args = data.get(key)
            if isinstance(args, dict):
                fn(**args)
            elif key == "expire_signatures" and isinstance(args, int):
                self.expire_signatures(args)


class RateLimiter:
    """Fixed-window request quotas per (bucket, client), like the Hub's `api`/`resolvers`."""

    def __init__(
        self, quotas: Mapping[str, int], window_s: int = 300, clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self._quotas = dict(quotas)
        self._window_s, self._clock = window_s, clock
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}

    def set_quota(self, bucket: str, quota: int) -> None:
        with self._lock:
            self._quotas[bucket] = quota
            self._counts = {k: v for k, v in self._counts.items() if k[0] != bucket}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def hit(self, bucket: str, client: str) -> tuple[bool, dict[str, str]]:
        """Count one request; return (allowed, the RateLimit headers to send)."""
        now = self._clock()
        window = int(now // self._window_s)
        with self._lock:
            quota = self._quotas.get(bucket, 10**9)
            start, used = self._counts.get((bucket, client), (window, 0))
            if start != window:
                start, used = window, 0
            allowed = used < quota
            used += 1 if allowed else 0
            self._counts[(bucket, client)] = (start, used)
        reset_s = max(1, int((window + 1) * self._window_s - now))
        headers = {
            "RateLimit": f'"{bucket}";r={max(0, quota - used)};t={reset_s}',
            "RateLimit-Policy": f'"fixed window";"{bucket}";q={quota};w={self._window_s}',
        }
        return allowed, headers

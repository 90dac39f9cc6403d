"""Frozen settings of a run, and how they are read from the environment.

Every default lives here. Precedence follows the official client (hub-protocol.md §2.2, §12):
explicit argument > environment variable > token file > default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from engine._errors import UsageError

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub constants.ENV_VARS_TRUE_VALUES
MiB = 1024 * 1024


class RetryPolicy(NamedTuple):
    """Retry schedule: `base_s` doubling per attempt, jittered, never above `cap_s`."""

    max_retries: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0
    jitter: float = 0.2  # +-20 %: spreads a herd of retries without making the wait unpredictable
    # A Retry-After longer than this is not waited out: the request fails at once, saying how long
    # the server asked for. A CI job should not sit silent for the hour a server may ask.
    max_wait_s: float = 300.0


class HostLimits(NamedTuple):
    """Request budget for one host: a token bucket of `rate_per_s` with bursts of `burst`.

    The defaults sit at the anonymous quotas of the Hub (hub-protocol.md §10.1): 3 000 resolver
    and 500 API requests per 5-minute window. The burst lets a pull of a few thousand small files
    start at full speed; the rate keeps a long mirror run inside the window. RateLimit headers
    sent by the server override both.
    """

    rate_per_s: float
    burst: int


API_LIMITS = HostLimits(rate_per_s=500 / 300, burst=200)
RESOLVE_LIMITS = HostLimits(rate_per_s=3000 / 300, burst=2500)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything a run needs to know; build it with `load_config()`."""

    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    hf_home: Path = field(default_factory=lambda: Path.home() / ".cache" / "huggingface")
    hub_cache: Path = field(default_factory=lambda: Path.home() / ".cache" / "huggingface" / "hub")
    offline: bool = False
    retry: RetryPolicy = RetryPolicy()
    api_limits: HostLimits = API_LIMITS
    resolve_limits: HostLimits = RESOLVE_LIMITS
    connect_timeout_s: float = 10.0
    # A connection that delivers no byte for this long (or takes none of a body being sent) is
    # dropped and its request or range retried.
    stall_timeout_s: float = 30.0
    # Metadata requests (repo info, file lists, search, the HEAD that locates a large file): each
    # attempt's connect and each wait for a byte. None: connect_timeout_s and stall_timeout_s.
    metadata_timeout_s: float | None = None
    max_connections: int = 32
    # Range size, measured with benchmarks/bench_pull.py (40 MB/s per connection, 30 ms latency):
    # 4, 8 and 16 MiB give the same throughput, but the sha256 of a file can only advance over
    # its contiguous prefix, so bytes fetched ahead of it (up to connections x range) are hashed
    # after the last byte lands; 8 MiB keeps that tail under ~0.1 s while each request still
    # spends ~85 % of its time transferring.
    chunk_bytes: int = 8 * MiB
    files_in_flight: int = 8
    max_rate_bytes_s: float | None = None
    hash_workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    # Processes for the push's secret scan of large text files; 1 keeps it in this process. A
    # spawned worker re-imports the program's __main__, which only a guarded entry point (the
    # CLI's) can afford, so a program that embeds the engine opts in.
    scan_processes: int = 1
    # Whether the CLI may draw live progress (HF_HUB_DISABLE_PROGRESS_BARS); the engine never draws.
    progress_bars: bool = True

    @property
    def endpoint_origin(self) -> tuple[str, str, int]:
        return origin_of(self.endpoint)


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, lower-cased host, port with the scheme default filled in)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


_MALFORMED_URL = (
    "not a valid URL (check the brackets around an IPv6 address, and percent-encode special"
    " characters in a user name or password)"
)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be requested, or None when it can: http(s), a host, a port in 1-65535."""
    try:
        parts = urlsplit(url)
    except ValueError:  # unbalanced brackets around an IPv6 address
        return _MALFORMED_URL
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL"
    if not parts.hostname.isascii():
        # The Host header is latin-1 and DNS wants the ASCII form; no IDNA encoding is done here.
        return "the host name must be ASCII (write an international name in its xn-- form)"
    try:
        # Port 0 would silently become the scheme's default (`port or 443`): refuse it too.
        bad_port = parts.port == 0
    except ValueError:
        bad_port = True
    return "the port must be a number from 1 to 65535" if bad_port else None


def normalize_endpoint(value: str) -> str:
    """Strip trailing slashes and check that `value` is an http(s) URL that can be requested.

    Raises UsageError with a one-line message that never repeats credentials from the URL.
    """
    value = value.strip().rstrip("/")
    problem = url_problem(value)
    if problem != _MALFORMED_URL and "@" in "".join(urlsplit(value)[2:]):
        # An "@" past the host: a user name or password with an unencoded "/", "?" or "#", which
        # ended the host part early and left the password in the host, port or path shown below.
        problem = _MALFORMED_URL
    if problem is None:
        return value
    if problem == _MALFORMED_URL:
        raise UsageError(f"invalid endpoint: {problem}")  # no part of it can be shown safely
    # Imported here: engine._proxy loads asyncio, which loading a config does not need.
    from engine._proxy import public_url

    shown = public_url(value)
    raise UsageError(
        f"invalid endpoint '{shown}': {problem}" if "://" in shown else f"invalid endpoint: {problem}"
    )


def _truthy(value: str | None) -> bool:
    # huggingface_hub's `_is_true`, to the letter: upper-cased, not stripped.
    return value is not None and value.upper() in _TRUE


def _clean_token(token: str | None, source: str) -> str | None:
    """`token` as huggingface_hub's `_clean_token` leaves it: every CR and LF removed (a token
    pasted across lines, a file saved with CRLF), then stripped; None when nothing is left.

    Raises UsageError, naming `source` and never the token, when what is left cannot go in an
    HTTP header: a control character or a character outside latin-1.
    """
    if token is None:
        return None
    token = token.replace("\r", "").replace("\n", "").strip()
    if any(c < " " or "\x7f" <= c < "\xa0" or c > "\xff" for c in token):
        raise UsageError(
            f"the token from {source} cannot be sent in an HTTP header: it holds a control character"
            " or a character outside latin-1"
        )
    return token or None


def _read_token_file(path: Path) -> str | None:
    try:
        return _clean_token(path.read_text(encoding="utf-8"), f"the file {path}")
    except UnicodeDecodeError:
        raise UsageError(f"the token file {path} is not UTF-8 text") from None
    except OSError:
        return None


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    **overrides: object,
) -> EngineConfig:
    """Build an EngineConfig from `env` (default: os.environ) and explicit overrides.

    Raises UsageError for an endpoint that is not an http(s) URL, and for a token that cannot be
    sent in an HTTP header.
    """
    env = os.environ if env is None else env
    if env.get("HF_HOME"):
        hf_home = Path(env["HF_HOME"]).expanduser()
    elif env.get("XDG_CACHE_HOME"):
        hf_home = Path(env["XDG_CACHE_HOME"]).expanduser() / "huggingface"
    else:
        hf_home = Path.home() / ".cache" / "huggingface"
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    hub_cache = Path(cache).expanduser() if cache else hf_home / "hub"

    if token is not None:
        token = _clean_token(token, "--token")
    else:
        # As the official client: the first variable set wins, and when it holds only line breaks
        # and blanks the token file is read.
        name = "HF_TOKEN" if env.get("HF_TOKEN") else "HUGGING_FACE_HUB_TOKEN"
        token = _clean_token(env.get(name) or None, name)
        if token is None:
            token_path = (
                Path(env["HF_TOKEN_PATH"]).expanduser() if env.get("HF_TOKEN_PATH") else hf_home / "token"
            )
            token = _read_token_file(token_path)

    kwargs: dict[str, object] = {
        "endpoint": normalize_endpoint(endpoint or env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT),
        "token": token,
        "hf_home": hf_home,
        "hub_cache": hub_cache,
        # As huggingface_hub decides it: HF_HUB_OFFLINE, when set and not empty, alone decides
        # ("0" is online whatever TRANSFORMERS_OFFLINE says); TRANSFORMERS_OFFLINE only stands in.
        "offline": _truthy(env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE")),
        # huggingface_hub's rule: only a true value disables; any other value leaves progress on.
        "progress_bars": not _truthy(env.get("HF_HUB_DISABLE_PROGRESS_BARS")),
    }
    tuning = _tuning(env)
    kwargs.update(tuning)
    kwargs.update(overrides)
    return EngineConfig(**kwargs)  # type: ignore[arg-type]


def _float_env(env: Mapping[str, str], name: str, *, zero_is_default: bool = False) -> float | None:
    """Seconds from `name`, None when unset or empty (and with `zero_is_default`, when 0).

    Raises UsageError for anything but a finite positive number.
    """
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"{name} must be a number of seconds, got '{raw}'")
    if value == 0 and zero_is_default:
        return None
    if value <= 0:
        raise UsageError(f"{name} must be positive, got '{raw}'")
    return value


def _tuning(env: Mapping[str, str]) -> dict[str, object]:
    """Knobs for tests and unusual networks: BATUTA_RETRY_BASE_S, BATUTA_RETRY_CAP_S,
    BATUTA_RETRY_MAX_WAIT_S, BATUTA_STALL_TIMEOUT_S; and huggingface_hub's timeouts, as close as
    batuta has them (0 keeps the default there, so here too):

    - HF_HUB_DOWNLOAD_TIMEOUT, there the connect and read timeout of a download (httpx: the
      longest wait for the next piece of the body): here `connect_timeout_s` and the stall
      watchdog `stall_timeout_s`, of every request. BATUTA_STALL_TIMEOUT_S wins for the stall.
    - HF_HUB_ETAG_TIMEOUT, there the timeout of the metadata request of a file: here
      `metadata_timeout_s`, the same two bounds for metadata requests only.
    """
    out: dict[str, object] = {}
    base, cap = _float_env(env, "BATUTA_RETRY_BASE_S"), _float_env(env, "BATUTA_RETRY_CAP_S")
    longest = _float_env(env, "BATUTA_RETRY_MAX_WAIT_S")
    if base is not None or cap is not None or longest is not None:
        default = RetryPolicy()
        out["retry"] = RetryPolicy(
            base_s=base or default.base_s,
            cap_s=cap or default.cap_s,
            max_wait_s=longest or default.max_wait_s,
        )
    download = _float_env(env, "HF_HUB_DOWNLOAD_TIMEOUT", zero_is_default=True)
    if download is not None:
        out["connect_timeout_s"] = download
    stall = _float_env(env, "BATUTA_STALL_TIMEOUT_S") or download
    if stall is not None:
        out["stall_timeout_s"] = stall
    metadata = _float_env(env, "HF_HUB_ETAG_TIMEOUT", zero_is_default=True)
    if metadata is not None:
        out["metadata_timeout_s"] = metadata
    return out

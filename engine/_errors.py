"""The exception tree of the engine.

```
BatutaError                    root; never raised directly
├── UsageError                 bad repo id, revision, path or option: the caller's mistake
│   └── SecretsFoundError      push refused: credentials found in the folder (.findings)
├── OfflineError               HF_HUB_OFFLINE is set and the answer is not in the cache
├── HubError                   the Hub answered with an error        (.status, .url, .request_id)
│   ├── NotFoundError          404 for a repo, revision or file      (.code)
│   ├── AuthRequiredError      401: no token, or a token the Hub does not accept
│   ├── GatedRepoError         gated repo, access not granted
│   ├── ForbiddenError         403: the token lacks the right
│   ├── ConflictError          409 / 412: repo exists, parent commit moved
│   ├── RateLimitedError       still 429 after retries               (.retry_after_s)
│   ├── HubServerError         still 5xx after retries
│   └── ProtocolError          an answer that is not what the Hub sends (HTML, garbage)
├── TransportError             no usable answer                      (.url, .attempts)
│   ├── ConnectError           connection refused, DNS, TLS
│   └── TransferTimeoutError   no byte for too long
├── IntegrityError             wrong size or digest                  (.path, .expected, .actual)
└── TransferIncompleteError    some selected files failed            (.failed)
```

Every error masks the secrets of the clients open at the time it is built (`masking()`): the
token, and a password in the endpoint URL. Messages take text from servers (`X-Error-Message`,
JSON `error` fields, garbage quoted by the HTTP parser) that may repeat the Authorization
header; masking here covers every such message, wherever in the engine it is built.

This module imports nothing third-party, so the CLI can map errors without loading the engine's HTTP stack.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

# secret -> how many open clients hold it. Process-wide, not per task: an error may be built in
# a worker thread or in a task started outside the client's context, and must still be masked.
_held: dict[str, int] = {}
_held_lock = threading.Lock()
# A piece of a secret this long or longer is masked too: messages cut server text to a length
# limit, which can leave the start of a token behind.
_MIN_PIECE = 8


@contextmanager
def masking(*secrets: str | None) -> Iterator[None]:
    """Mask `secrets` (None and "" are skipped) in every BatutaError built inside the block."""
    # A secret shorter than a recognisable piece would mask ordinary words (a one-letter password
    # turns "pytorch" into "***ytorch"); URLs in messages never show user info anyway.
    held = [s for s in secrets if s and len(s) >= _MIN_PIECE]
    with _held_lock:
        for secret in held:
            _held[secret] = _held.get(secret, 0) + 1
    try:
        yield
    finally:
        with _held_lock:
            for secret in held:
                if _held[secret] > 1:
                    _held[secret] -= 1
                else:
                    del _held[secret]


def mask(text: str) -> str:
    """`text` with each held secret, or a cut-off start of one, replaced by `hf_***` / `***`."""
    with _held_lock:
        # Longest first: a secret that contains another is masked whole.
        secrets = sorted(_held, key=len, reverse=True)
    for secret in secrets:
        text = _mask_one(text, secret)
    return text


def _mask_one(text: str, secret: str) -> str:
    head = secret[:_MIN_PIECE]
    if head not in text:
        return text
    shown = "hf_***" if secret.startswith("hf_") else "***"
    out, i = [], 0
    while (start := text.find(head, i)) >= 0:
        end = start + len(head)
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        out += [text[i:start], shown]
        i = end
    out.append(text[i:])
    return "".join(out)


class BatutaError(Exception):
    """Root of every error the engine raises on purpose."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(mask(a) if isinstance(a, str) else a for a in args))


class UsageError(BatutaError):
    """The caller asked for something invalid: repo id, revision, option, path."""


class SecretsFoundError(UsageError):
    """A push was refused because the folder holds credentials."""

    def __init__(self, message: str, *, findings: Sequence[str]) -> None:
        super().__init__(message)
        self.findings = [mask(f) for f in findings]


class OfflineError(BatutaError):
    """Offline mode is on and what was asked for is not in the local cache."""


class HubError(BatutaError):
    """The Hub answered with an error status (retries, if any, are used up)."""

    def __init__(self, message: str, *, status: int = 0, url: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.status, self.url, self.request_id = status, mask(url), mask(request_id)


class NotFoundError(HubError):
    """A repo, revision or file does not exist (or is not visible to this token)."""

    def __init__(
        self, message: str, *, status: int = 404, url: str = "", request_id: str = "", code: str = ""
    ) -> None:
        super().__init__(message, status=status, url=url, request_id=request_id)
        self.code = code  # a machine-readable token from the server, compared by callers


class AuthRequiredError(HubError):
    """401: a token is needed, or the token was refused."""


class GatedRepoError(HubError):
    """The repo is gated and this token has not been granted access."""


class ForbiddenError(HubError):
    """403: the token is valid but lacks the right (e.g. read-only token on a write)."""


class ConflictError(HubError):
    """409 or 412: the repo already exists, or the branch moved under a commit."""


class RateLimitedError(HubError):
    """Still 429 after every retry."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s


class HubServerError(HubError):
    """Still 5xx after every retry."""


class ProtocolError(HubError):
    """The endpoint answered something that is not a Hub answer (HTML, invalid JSON)."""


class TransportError(BatutaError):
    """No usable answer from the network."""

    def __init__(self, message: str, *, url: str = "", attempts: int = 0) -> None:
        super().__init__(message)
        self.url, self.attempts = mask(url), attempts


class ConnectError(TransportError):
    """The endpoint could not be reached."""


class TransferTimeoutError(TransportError):
    """A request or a stream made no progress within its time budget."""


class IntegrityError(BatutaError):
    """Downloaded or uploaded bytes do not match the expected size or digest."""

    def __init__(self, message: str, *, path: str = "", expected: str = "", actual: str = "") -> None:
        super().__init__(message)
        self.path, self.expected, self.actual = mask(path), mask(expected), mask(actual)


class TransferIncompleteError(BatutaError):
    """A transfer ended with some selected files missing or failed."""

    def __init__(self, message: str, *, failed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.failed = [mask(f) for f in failed]


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a failed task group means to a caller: its first BatutaError, else its first other
    Exception (a local OSError, say), else the group itself (a cancellation, Ctrl-C).

    Parallel tasks fail for one reason at a time; handing the caller an ExceptionGroup would turn
    a one-line error into a traceback and skip every `except BatutaError`.
    """
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending[:0] = list(exc.exceptions)
        else:
            leaves.append(exc)
    return next(
        (e for e in leaves if isinstance(e, BatutaError)),
        next((e for e in leaves if isinstance(e, Exception)), group),
    )

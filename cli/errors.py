"""Exit codes and the one-line message for each BatutaError (no engine imports beyond _errors)."""

from __future__ import annotations

from enum import IntEnum

from engine import _errors as E


class ExitCode(IntEnum):
    """Process exit codes; documented in README.md."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH_REQUIRED = 4
    GATED = 5
    FORBIDDEN = 6
    RATE_LIMITED = 7
    SERVER_ERROR = 8
    UNREACHABLE = 9
    OFFLINE = 10
    INTEGRITY = 11
    SECRETS_FOUND = 12
    INCOMPLETE = 13
    CONFLICT = 14
    INTERRUPTED = 130


_CODES: tuple[tuple[type[E.BatutaError], ExitCode], ...] = (
    (E.SecretsFoundError, ExitCode.SECRETS_FOUND),
    (E.UsageError, ExitCode.USAGE),
    (E.OfflineError, ExitCode.OFFLINE),
    (E.NotFoundError, ExitCode.NOT_FOUND),
    (E.AuthRequiredError, ExitCode.AUTH_REQUIRED),
    (E.GatedRepoError, ExitCode.GATED),
    (E.ForbiddenError, ExitCode.FORBIDDEN),
    (E.ConflictError, ExitCode.CONFLICT),
    (E.RateLimitedError, ExitCode.RATE_LIMITED),
    (E.HubServerError, ExitCode.SERVER_ERROR),
    (E.ProtocolError, ExitCode.SERVER_ERROR),
    (E.TransportError, ExitCode.UNREACHABLE),
    (E.IntegrityError, ExitCode.INTEGRITY),
    (E.TransferIncompleteError, ExitCode.INCOMPLETE),
)


def exit_code_for(error: E.BatutaError) -> ExitCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return ExitCode.FAILURE


def message_for(error: BaseException) -> str:
    """One line, never a traceback; the token never appears in engine messages."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__

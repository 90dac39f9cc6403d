"""The Hub's error answers as BatutaErrors, with messages that name the repo, file or host.

The status and the `X-Error-Code` header decide the class (engine/_errors.py); the server's own
message (`X-Error-Message`, or a JSON body's `error`) is quoted, masked, on one line.
"""

from __future__ import annotations

import json as jsonlib
from typing import TYPE_CHECKING, Any

from engine import _errors as E
from engine._backoff import parse_retry_after
from engine._proxy import public_url

if TYPE_CHECKING:
    from engine._hub import Ctx, HubResponse


def _server_message(resp: HubResponse) -> str:
    msg = resp.headers.get("x-error-message", "")
    if not msg and resp.body[:1] in (b"{", b"["):
        try:
            data = jsonlib.loads(resp.body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            msg = data["error"]
    # Masked before it is cut: a cut could leave a piece of the token too short to recognise.
    msg = E.mask(msg).strip()
    return msg.splitlines()[0][:200] if msg else ""


def _duration(seconds: float) -> str:
    """`45 s`, `5 min`, `1 h 20 min`: a wait as a person reads it."""
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def map_error(
    resp: HubResponse, ctx: Ctx, *, has_token: bool, on_hub: bool = True, transfer: str = "download"
) -> E.HubError:
    """Turn an error response into the matching HubError, with a message that names the object.

    `on_hub` False: the answer came from a storage host (the CDN a resolve redirects to, or where
    LFS uploads go), which never sees the token, so its refusals are not about the token's rights;
    `transfer` says which way the bytes were going.
    """
    status, code = resp.status, resp.headers.get("x-error-code", "")
    url = public_url(resp.url)
    kw: dict[str, Any] = {"status": status, "url": url, "request_id": resp.headers.get("x-request-id", "")}
    repo = ctx.repo or "the repository"
    server_msg = _server_message(resp)
    if not on_hub and status in (401, 403, 410):
        what = ctx.path or url
        detail = f": {server_msg}" if server_msg else ""
        return E.ForbiddenError(
            f"{public_url(resp.url, path=False)} refused the {transfer} of {what} (HTTP {status}{detail})",
            **kw,
        )
    if code == "GatedRepo":
        hint = "request access on its page" if has_token else "set HF_TOKEN or pass --token"
        return E.GatedRepoError(f"{repo} is gated: access not granted ({hint})", **kw)
    if code == "RevisionNotFound":
        return E.NotFoundError(f"revision '{ctx.revision}' not found in {repo}", code=code, **kw)
    if code == "EntryNotFound":
        where = f" at {ctx.revision}" if ctx.revision else ""
        return E.NotFoundError(f"file '{ctx.path}' not found in {repo}{where}", code=code, **kw)
    if status == 401:
        if "invalid credentials" in server_msg.lower():
            return E.AuthRequiredError("the token was refused by the Hub (invalid or revoked)", **kw)
        if has_token:
            return E.AuthRequiredError(
                f"authentication failed for {repo}: {server_msg or 'unauthorized'}", **kw
            )
        return E.AuthRequiredError(
            f"authentication required for {repo} (private, or does not exist): set HF_TOKEN or pass --token",
            **kw,
        )
    if code == "RepoNotFound" or (status == 404 and ctx.repo and not ctx.path):
        return E.NotFoundError(f"repository '{repo}' not found", code=code or "RepoNotFound", **kw)
    if status == 404:
        return E.NotFoundError(
            f"not found: {ctx.path or url}" + (f" in {ctx.repo}" if ctx.repo else ""), **kw
        )
    if status == 403:
        return E.ForbiddenError(f"forbidden: {server_msg or 'the token lacks the right for ' + repo}", **kw)
    if status in (409, 412):
        return E.ConflictError(server_msg or f"conflict on {repo} (HTTP {status})", **kw)
    wait = parse_retry_after(resp.headers.get("retry-after"))
    # With a wait too long to sit through, no retry was made: say what the server asked for.
    after = f" (it asks to wait {_duration(wait)}; try again later)" if wait is not None else " after retries"
    if status == 429:
        return E.RateLimitedError(
            f"rate limited by {public_url(resp.url, path=False)}{after}", retry_after_s=wait, **kw
        )
    if status >= 500:
        return E.HubServerError(f"server error {status} from {public_url(resp.url, path=False)}{after}", **kw)
    return E.HubError(f"HTTP {status} from {url}" + (f": {server_msg}" if server_msg else ""), **kw)

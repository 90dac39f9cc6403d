"""HTTP plumbing shared by both listeners: Hub-style errors, JSON, query parsing, signed URLs."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import unquote, urlencode

from aiohttp import web
from multidict import MultiMapping

JSON_TYPE = "application/json; charset=utf-8"


class HubHTTPError(Exception):
    """An error answer, shaped like the Hub's: `X-Error-Code`, `X-Error-Message`, `{"error": ...}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        headers = dict(self.headers)
        if self.code:
            headers["X-Error-Code"] = self.code
        headers.setdefault("X-Error-Message", header_safe(self.message))
        return json_response({"error": self.message}, status=self.status, headers=headers)


_UNSAFE_IN_HEADER = re.compile(r"[^\x20-\x7e]")


def header_safe(text: str) -> str:
    """`text` as a header value: printable ASCII on one line, anything else backslash-escaped.

    Messages quote what the client sent (a revision, a path), so they may hold any character;
    the JSON body keeps the real text.
    """
    flat = " ".join(text.splitlines())
    return _UNSAFE_IN_HEADER.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), flat)


def json_response(
    data: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, separators=(",", ":")).encode(),
        headers={"Content-Type": JSON_TYPE, **(headers or {})},
    )


def plain_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """A CDN/S3-style error: plain text, no Hub headers."""
    return web.Response(status=status, text=message, headers=dict(headers or {}))


def truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def query_list(query: MultiMapping[str], key: str) -> list[str]:
    """Repeated query keys, in either style: `k=a&k=b` or `k[]=a&k[]=b`."""
    return [*query.getall(key, []), *query.getall(f"{key}[]", [])]


def split_revision(raw: list[str]) -> tuple[str, list[str]] | None:
    """Split raw path segments into (revision, rest): one encoded segment, or bare `refs/pr/N`."""
    if not raw or not raw[0]:
        return None
    if raw[0] == "refs" and len(raw) >= 3 and raw[1] in ("pr", "convert"):
        return f"refs/{raw[1]}/{unquote(raw[2])}", raw[3:]
    return unquote(raw[0]), raw[1:]


def join_path(raw: list[str]) -> str:
    """Decode each raw segment (so `a%2Fb` and `a/b` both give `a/b`) and join them."""
    return "/".join(unquote(s) for s in raw)


def host_origin(request: web.BaseRequest) -> str:
    """`http://host:port` as the client addressed us, for absolute URLs in answers."""
    return f"{request.scheme}://{request.host}"


def other_loopback(host: str) -> str:
    """The blob listener's host name: a different origin from the API's."""
    return {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host, host)


class Signer:
    """Signs URLs for the blob listener like a CDN: `?exp=<unix>&...&sig=<hmac-sha256>`."""

    def __init__(self, secret: bytes, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._secret, self.ttl_s, self._clock = secret, ttl_s, clock

    def _mac(self, path: str, items: list[tuple[str, str]]) -> str:
        msg = f"{path}?{urlencode(sorted(items))}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def sign(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """`path?query` with an expiry and a signature over both."""
        items = [*(params or {}).items(), ("exp", str(int(self._clock() + self.ttl_s)))]
        return f"{path}?{urlencode(items)}&sig={self._mac(path, items)}"

    def check(self, path: str, query: MultiMapping[str]) -> str | None:
        """None when the URL is genuine and fresh, else the reason to refuse it."""
        sig = query.get("sig", "")
        items = [(k, v) for k, v in query.items() if k != "sig"]
        if not hmac.compare_digest(sig, self._mac(path, items)):
            return "SignatureDoesNotMatch: the request signature we calculated does not match the signature you provided"
        try:
            exp = int(query.get("exp", "0"))
        except ValueError:
            exp = 0
        if exp < self._clock():
            return "AccessDenied: Request has expired"
        return None

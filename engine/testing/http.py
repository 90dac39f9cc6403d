"""Small synchronous helpers for tests that speak raw HTTP to a LocalHub, or run the official client.

`fetch` never follows redirects and never raises on an error status, so a test sees exactly
what the server sent. `run_official_client` runs a `huggingface_hub` script in a fresh
interpreter, because that library reads its settings from the environment at import time.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole HTTP answer; `complete` is False when the connection was cut mid-body."""

    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    complete: bool = True

    def json(self) -> object:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def fetch(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    token: str | None = None,
    timeout_s: float = 30.0,
) -> Reply:
    """One request on a fresh connection; `token` adds `Authorization: Bearer <token>`."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(
            method, target, body=body.encode() if isinstance(body, str) else body, headers=all_headers
        )
        resp = conn.getresponse()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        try:
            data, complete = resp.read(), True
        except http.client.IncompleteRead as exc:
            data, complete = exc.partial, False
        return Reply(resp.status, hdrs, data, complete)
    finally:
        conn.close()


def post_json(url: str, payload: object, token: str | None = None) -> Reply:
    """POST `payload` as a JSON body."""
    headers = {"Content-Type": "application/json"}
    return fetch("POST", url, body=json.dumps(payload), token=token, headers=headers)


def expect_json(reply: Reply, status: int = 200) -> Any:
    """The reply's JSON body, after checking its status (the reply is shown when it differs)."""
    assert reply.status == status, reply
    return reply.json()


def official_client_env(endpoint: str, home: Path, token: str | None = None) -> dict[str, str]:
    """Environment for `huggingface_hub` pointed at `endpoint` with an isolated cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(home),
        HF_HUB_CACHE=str(home / "hub"),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1" if token is None else "0",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_official_client(
    script: str, *, endpoint: str, home: Path, token: str | None = None, timeout_s: float = 120.0
) -> object:
    """Run `script` with `huggingface_hub` configured; it must end by printing one JSON value.

    Raises AssertionError with the child's stderr when it fails.
    """
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=official_client_env(endpoint, home, token),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"official client failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None

"""LocalHub: the Hub-compatible server on 127.0.0.1:0 for tests, with fault switches.

```python
with LocalHub.in_thread() as hub:
    sha = hub.add_repo("acme/tiny", {"config.json": "{}", "model.safetensors": blob})
    hub.fail(status=503, times=2, path_contains="/resolve/")
    ...  # point a client at hub.url
    assert hub.stats().blob_requests_with_auth == 0
```

The server runs in its own thread and event loop, so the same hub serves async engine tests
and sync CLI tests. `ServerProcess` offers the same controls for a server in a subprocess
(benchmarks, CLI subprocess tests), through the `/_batuta/` admin routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, cast

from engine.server import HubServer, HubStats, ServerConfig
from engine.server._auth import TokenBook, TokenInfo
from engine.server._store import Store, repo_ref

REPO_ROOT = Path(__file__).resolve().parents[2]


def config_with(base: ServerConfig, overrides: Mapping[str, object]) -> ServerConfig:
    """`base` with some fields replaced by name; unknown names raise TypeError."""
    known = {f.name for f in fields(ServerConfig)}
    if unknown := set(overrides) - known:
        raise TypeError(f"unknown ServerConfig fields: {', '.join(sorted(unknown))}")
    return replace(base, **cast(dict[str, Any], dict(overrides)))


class _Controls:
    """Repo/token set-up and fault switches; subclasses say how a switch reaches the server."""

    root: Path
    url: str
    blob_url: str

    def _store(self) -> Store:
        raise NotImplementedError

    def _apply(self, switches: Mapping[str, object]) -> None:
        raise NotImplementedError

    def _after_write(self) -> None:
        """Called after files changed on disk behind the server's back."""

    # ---- content ----------------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str | Path],
        *,
        repo_type: str = "model",
        private: bool = False,
        gated: bool | str = False,
        meta: Mapping[str, object] | None = None,
        revision: str = "main",
    ) -> str:
        """Write a repo (replacing the branch's files) and return its head commit sha.

        `gated=True` means `"manual"`. `meta` adds sidecar fields (downloads, likes, tags,
        pipeline_tag, library_name, license, cardData, createdAt, sdk, ...; see LAYOUT.md); a
        `README.md` with a YAML header in `files` counts too, the sidecar winning on conflicts.
        `revision` writes another branch (or a tag, as `refs/tags/<t>`) of an existing repo.
        """
        store = self._store()
        repo = repo_ref(repo_type, repo_id)
        if revision == "main":
            sidecar: dict[str, object] = {"private": private, "gated": "manual" if gated is True else gated}
            sidecar.update(meta or {})
            store.write_meta(repo, sidecar)
        store.write_files(repo, files, branch=revision)
        self._after_write()
        snap = store.snapshot_sync(repo, revision)
        assert snap is not None
        return snap.commit

    def add_alias(self, name: str, repo_id: str, *, repo_type: str = "model") -> None:
        """Make the legacy bare id `name` redirect to `repo_id`, as the Hub does for `gpt2`."""
        self._store().add_alias(repo_ref(repo_type, repo_id).repo_type, name, repo_id)
        self._after_write()

    def repo_dir(self, repo_id: str, *, repo_type: str = "model", revision: str = "main") -> Path:
        """The folder holding a branch's files (edit it to change the repo by hand)."""
        return self._store().branch_dir(repo_ref(repo_type, repo_id), revision)

    def head(self, repo_id: str, *, repo_type: str = "model", revision: str = "main") -> str | None:
        """The current commit sha of a branch, or None if it does not exist."""
        snap = self._store().snapshot_sync(repo_ref(repo_type, repo_id), revision)
        return snap.commit if snap else None

    def add_token(
        self,
        token: str,
        *,
        user: str,
        role: str = "read",
        gated: bool = False,
        namespaces: Sequence[str] | None = None,
    ) -> None:
        """Register a token in `<root>/tokens.json`; `namespaces` limits it (see LAYOUT.md)."""
        ns = tuple(namespaces) if namespaces is not None else None
        TokenBook(self.root / "tokens.json").add(TokenInfo(token, user, role, gated, ns))
        self._after_write()

    # ---- faults -----------------------------------------------------------------------------
    def fail(
        self, *, status: int, times: int, path_contains: str | None = None, retry_after: str | None = None
    ) -> None:
        """The next `times` matching requests answer `status` (with `Retry-After` if given)."""
        self._apply({"fail": {"status": status, "times": times, "path_contains": path_contains,
                              "retry_after": retry_after}})  # fmt: skip

    def throttle(
        self,
        *,
        per_conn_bytes_s: float | None = None,
        latency_s: float = 0.0,
        aggregate_bytes_s: float | None = None,
        api_latency_s: float = 0.0,
    ) -> None:
        """Pace blob-route bodies (per connection and in total) and delay their first byte;
        `api_latency_s` delays every request on the API listener."""
        self._apply({"throttle": {"per_conn_bytes_s": per_conn_bytes_s, "latency_s": latency_s,
                                  "aggregate_bytes_s": aggregate_bytes_s,
                                  "api_latency_s": api_latency_s}})  # fmt: skip

    def truncate_once(self, *, after_bytes: int, path_contains: str | None = None) -> None:
        """Cut the connection after `after_bytes` body bytes, once (downloads; upload bodies too)."""
        self._apply({"truncate_once": {"after_bytes": after_bytes, "path_contains": path_contains}})

    def flip_byte_once(self, *, path_contains: str | None = None, offset: int = 0) -> None:
        """Corrupt the byte at `offset` of the next matching body sent."""
        self._apply({"flip_byte_once": {"path_contains": path_contains, "offset": offset}})

    def stall_once(self, *, after_bytes: int, seconds: float, path_contains: str | None = None) -> None:
        """Stop sending for `seconds` after `after_bytes` body bytes, once."""
        self._apply(
            {"stall_once": {"after_bytes": after_bytes, "seconds": seconds, "path_contains": path_contains}}
        )

    def expire_signatures(self, times: int = 1) -> None:
        """The next `times` blob downloads answer 403 like an expired signed URL."""
        self._apply({"expire_signatures": {"times": times}})


class LocalHub(_Controls):
    """A HubServer in a background thread; see the module docstring."""

    def __init__(self, server: HubServer, loop: asyncio.AbstractEventLoop) -> None:
        self._server, self._loop = server, loop
        self.root = server.svc.store.root
        self.url = server.url
        self.blob_url = server.blob_url

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, root: Path | None = None, **config: object) -> Iterator[LocalHub]:
        """Start on 127.0.0.1:0 (blobs on localhost:0); `config` sets ServerConfig fields."""
        with contextlib.ExitStack() as stack:
            if root is None:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="localhub-")))
            cfg = config_with(ServerConfig(root=root, testing=True), config)
            started = threading.Event()
            box: dict[str, object] = {}

            async def main() -> None:
                stop = asyncio.Event()
                server = HubServer(cfg)
                await server.start()
                box.update(server=server, loop=asyncio.get_running_loop(), stop=stop)
                started.set()
                try:
                    await stop.wait()
                finally:
                    await server.aclose()

            def run() -> None:
                try:
                    asyncio.run(main())
                except BaseException as exc:  # surfaced to the caller below
                    box["error"] = exc
                    started.set()

            thread = threading.Thread(target=run, name="LocalHub", daemon=True)
            thread.start()
            started.wait(30)
            if "error" in box or "server" not in box:
                err = box.get("error")
                raise RuntimeError("LocalHub failed to start") from (
                    err if isinstance(err, BaseException) else None
                )
            loop, stop = box["loop"], box["stop"]
            assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
            assert isinstance(box["server"], HubServer)
            try:
                yield cls(box["server"], loop)
            finally:
                loop.call_soon_threadsafe(stop.set)
                thread.join(30)

    def _store(self) -> Store:
        return self._server.svc.store

    def _apply(self, switches: Mapping[str, object]) -> None:
        self._server.svc.faults.apply_json(switches)

    def set_rate_limit(self, *, api: int | None = None, resolvers: int | None = None) -> None:
        """Change the per-window request quotas (the window is ServerConfig.rate_limit_window_s)."""
        for bucket, quota in (("api", api), ("resolvers", resolvers)):
            if quota is not None:
                self._server.svc.ratelimit.set_quota(bucket, quota)

    def stats(self) -> HubStats:
        return self._server.svc.stats.snapshot()

    def reset(self) -> None:
        """Clear every fault switch, counter and rate-limit window."""
        svc = self._server.svc
        svc.faults.reset()
        svc.stats.reset()
        svc.ratelimit.reset()


@dataclass(slots=True)
class _Proc:
    popen: subprocess.Popen[bytes]
    ready: Path
    log: Path


class ServerProcess(_Controls):
    """`python -m engine.server --testing` in a subprocess, driven over `/_batuta/` admin routes.

    ```python
    with ServerProcess() as hub:   # same add_repo / fail / throttle / stats API as LocalHub
        ...
    ```
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        blob_port: int = 0,
        env: Mapping[str, str] | None = None,
        **config: object,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="serverprocess-")
            root = Path(self._tmp.name)
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._host, self._port, self._blob_port = host, port, blob_port
        self._env, self._config = dict(env or {}), config
        # Checked here as LocalHub checks them, and what the harness's own Store must agree on.
        self._server_config = config_with(ServerConfig(root=self.root), config)
        self._proc: _Proc | None = None
        self._local_store: Store | None = None
        self.url = self.blob_url = ""

    def start(self, timeout_s: float = 30.0) -> None:
        ready = self.root / ".batuta" / f"ready-{os.getpid()}-{id(self)}.json"
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.unlink(missing_ok=True)
        log = ready.with_suffix(".log")
        cmd = [sys.executable, "-m", "engine.server", "--root", str(self.root), "--host", self._host,
               "--port", str(self._port), "--blob-port", str(self._blob_port), "--testing",
               "--ready-file", str(ready), "--config", json.dumps(self._config)]  # fmt: skip
        env = {**os.environ, **self._env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        with log.open("wb") as out:
            popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        self._proc = _Proc(popen, ready, log)
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if popen.poll() is not None or time.monotonic() > deadline:
                output = log.read_text(errors="replace")[-4000:]
                self.stop()
                raise RuntimeError(f"server process did not start:\n{output}")
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        self.url, self.blob_url = str(info["url"]), str(info["blob_url"])

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.popen.terminate()
            try:
                self._proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.popen.kill()
                self._proc.popen.wait()
            self._proc.ready.unlink(missing_ok=True)
            self._proc.log.unlink(missing_ok=True)
            self._proc = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _store(self) -> Store:
        if self._local_store is None:
            self._local_store = Store.from_config(self._server_config)
        return self._local_store

    def _admin(self, method: str, route: str, body: Mapping[str, object] | None = None) -> object:
        data = json.dumps(dict(body or {})).encode() if method == "POST" else None
        req = urllib.request.Request(f"{self.url}/_batuta/{route}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def _apply(self, switches: Mapping[str, object]) -> None:
        self._admin("POST", "faults", switches)

    def _after_write(self) -> None:
        if self.url:
            self._admin("POST", "invalidate")

    def set_rate_limit(self, *, api: int | None = None, resolvers: int | None = None) -> None:
        quotas = {k: v for k, v in (("api", api), ("resolvers", resolvers)) if v is not None}
        self._admin("POST", "rate-limit", quotas)

    def stats(self) -> HubStats:
        data = self._admin("GET", "stats")
        assert isinstance(data, dict)
        return HubStats.from_json(data)

    def reset(self) -> None:
        self._admin("POST", "reset")

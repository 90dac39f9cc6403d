"""The two aiohttp listeners, the raw-path router, and the per-request pipeline.

Every API request goes: count it -> admin? -> rate limit -> injected failure -> token ->
handler. Routing works on the raw (still percent-encoded) path, as hub-protocol §1.4 asks:
`resolve/feature%2Fx/cfg.json` and `resolve/feature/x/cfg.json` are different requests.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from urllib.parse import unquote

import anyio
from aiohttp import web

from engine._errors import UsageError
from engine._models import RepoRef, RepoType
from engine.server import _blob, _commit, _discussions, _read, _write
from engine.server._context import Ctx, ServerConfig, Services, may_read
from engine.server._faults import FaultState, RateLimiter, Stats
from engine.server._http import HubHTTPError, Signer, join_path, json_response, other_loopback, split_revision
from engine.server._store import Store, repo_ref

Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]
log = logging.getLogger("batuta.server")

STATS_SLOT: web.RequestKey[list[object]] = web.RequestKey("batuta_stats_slot")
EXTRA_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("batuta_extra_headers")
_COLLECTIONS: dict[str, RepoType] = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIXES: dict[str, RepoType] = {"datasets": "dataset", "spaces": "space"}


def _not_found(ctx: Ctx) -> Awaitable[web.StreamResponse]:
    raise HubHTTPError(404, "Sorry, we can't find the page you are looking for.")


def _bad_repo(message: str) -> Handler:
    def fail(ctx: Ctx) -> Awaitable[web.StreamResponse]:
        raise HubHTTPError(404, message, code="RepoNotFound")

    return fail


def match_api(method: str, raw_path: str) -> tuple[str, Handler]:
    """(route kind, handler) for an API-listener request; unknown routes get a 404 handler."""
    segs = raw_path.split("/")[1:]
    try:
        if segs[:1] == ["api"]:
            return _match_api_tree(method, segs[1:])
        if segs[:1] == ["_batuta"]:
            return "admin", _not_found  # replaced by the server when testing is on
        return _match_files(method, segs)
    except UsageError as exc:
        return "other", _bad_repo(str(exc))


# What may follow `/api/<type>s/<id>`: a bare legacy id before one of these is redirected.
_REPO_ACTIONS = frozenset(
    {"revision", "tree", "paths-info", "refs", "commits", "preupload", "commit", "branch", "tag", "settings",
     "discussions"}
)  # fmt: skip


def legacy_location(store: Store, raw_path: str) -> tuple[str, RepoRef] | None:
    """Where the Hub sends a request naming a repo by another spelling than its canonical id.

    Two cases: a legacy bare id (`/api/models/gpt2`, `/gpt2/resolve/...`, from `aliases.json`) and
    a case variant (`/api/models/ACME/Tiny` for acme/tiny). Like the Hub, answer with a redirect
    to the canonical path rather than serving under two names, so clients learn the real id.
    Returns the path and the repo it names; whether the caller may learn it is not decided here.
    """
    segs = raw_path.split("/")[1:]
    if segs[:1] == ["api"]:
        if len(segs) < 3 or segs[1] not in _COLLECTIONS:
            return None
        api_type, rest = _COLLECTIONS[segs[1]], segs[2:]
        head = ["", "api", segs[1]]
        if len(rest) == 1 or rest[1] in _REPO_ACTIONS:
            if found := _moved(head, _alias_target(store, api_type, rest[0]), rest[1:]):
                return found
        if len(rest) == 2 or (len(rest) > 2 and rest[2] in _REPO_ACTIONS):
            return _moved(head, _case_target(store, api_type, rest[0], rest[1]), rest[2:])
        return None
    head = [""]
    repo_type: RepoType = "model"
    if segs and segs[0] in _PREFIXES:
        head, repo_type, segs = ["", segs[0]], _PREFIXES[segs[0]], segs[1:]
    if len(segs) >= 3 and segs[1] in ("resolve", "raw"):
        if found := _moved(head, _alias_target(store, repo_type, segs[0]), segs[1:]):
            return found
    if len(segs) >= 4 and segs[2] in ("resolve", "raw"):
        return _moved(head, _case_target(store, repo_type, segs[0], segs[1]), segs[2:])
    # Git LFS: `/{ns}/{name}.git/info/lfs/objects/{batch,verify}`, the id carrying a `.git` suffix.
    if len(segs) >= 4 and segs[1:4] == ["info", "lfs", "objects"] and segs[0].endswith(".git"):
        return _moved(head, _alias_target(store, repo_type, segs[0][:-4]), segs[1:], ".git")
    if len(segs) >= 5 and segs[2:5] == ["info", "lfs", "objects"] and segs[1].endswith(".git"):
        return _moved(head, _case_target(store, repo_type, segs[0], segs[1][:-4]), segs[2:], ".git")
    return None


def _moved(
    head: list[str], repo: RepoRef | None, tail: list[str], suffix: str = ""
) -> tuple[str, RepoRef] | None:
    """The request path with the repo id replaced by `repo`'s, or None when there is no `repo`."""
    return ("/".join([*head, repo.repo_id + suffix, *tail]), repo) if repo is not None else None


def _alias_target(store: Store, repo_type: RepoType, raw_name: str) -> RepoRef | None:
    """The repo a legacy bare id stands for, if `aliases.json` names one."""
    target = store.canonical_id(repo_type, unquote(raw_name))
    try:
        return repo_ref(repo_type, target) if target else None
    except UsageError:
        return None  # a hand-edited aliases.json naming an invalid id


def _case_target(store: Store, repo_type: RepoType, raw_ns: str, raw_name: str) -> RepoRef | None:
    """The stored repo whose id equals `ns/name` ignoring case, if only such a variant exists."""
    try:
        repo = repo_ref(repo_type, f"{unquote(raw_ns)}/{unquote(raw_name)}")
    except UsageError:
        return None
    target = store.canonical_case(repo_type, repo.repo_id)
    return repo_ref(repo_type, target) if target else None


def _match_api_tree(method: str, segs: list[str]) -> tuple[str, Handler]:
    if len(segs) == 1 and segs[0] in _COLLECTIONS and method == "GET":
        return "list", partial(_read.list_repos, repo_type=_COLLECTIONS[segs[0]])
    if segs == ["whoami-v2"] and method == "GET":
        return "whoami", _write.whoami
    if segs == ["validate-yaml"] and method == "POST":
        return "validate-yaml", _write.validate_yaml
    if segs == ["repos", "create"] and method == "POST":
        return "repo-create", _write.create_repo
    if segs == ["repos", "delete"] and method == "DELETE":
        return "repo-delete", _write.delete_repo
    if len(segs) < 3 or segs[0] not in _COLLECTIONS:
        return "other", _not_found
    repo = repo_ref(_COLLECTIONS[segs[0]], f"{unquote(segs[1])}/{unquote(segs[2])}")
    rest = segs[3:]
    if not rest and method == "GET":
        return "info", partial(_read.repo_info, repo=repo, rev=None)
    action, after = (rest[0], rest[1:]) if rest else ("", [])
    if action == "revision" and after and method == "GET":
        return "info", partial(_read.repo_info, repo=repo, rev=join_path(after))
    if action == "tree" and method == "GET" and (split := split_revision(after)) is not None:
        return "tree", partial(_read.tree, repo=repo, rev=split[0], path=join_path(split[1]))
    if action == "paths-info" and after and method == "POST":
        return "paths-info", partial(_read.paths_info, repo=repo, rev=join_path(after))
    if action == "refs" and not after and method == "GET":
        return "refs", partial(_read.refs, repo=repo)
    if action == "commits" and after and method == "GET":
        return "commits", partial(_read.commits, repo=repo, rev=join_path(after))
    if action == "preupload" and after and method == "POST":
        return "preupload", partial(_write.preupload, repo=repo, rev=join_path(after))
    if action == "commit" and after and method == "POST":
        return "commit", partial(_commit.commit, repo=repo, rev=join_path(after))
    if action == "branch" and after and method in ("POST", "DELETE"):
        return "branch", partial(_write.branch, repo=repo, name=join_path(after))
    if action == "tag" and after and method in ("POST", "DELETE"):
        return "tag", partial(_write.tag, repo=repo, name=join_path(after))
    if action == "discussions" and not after and method == "POST":
        return "discussion-create", partial(_discussions.create, repo=repo)
    if action == "discussions" and len(after) <= 1 and method == "GET":
        if after:
            return "discussions", partial(_discussions.details, repo=repo, num=unquote(after[0]))
        return "discussions", partial(_discussions.listing, repo=repo)
    if action == "settings" and not after and method == "PUT":
        return "settings", partial(_write.settings, repo=repo)
    return "other", _not_found


def _match_files(method: str, segs: list[str]) -> tuple[str, Handler]:
    repo_type: RepoType = "model"
    if segs and segs[0] in _PREFIXES and len(segs) >= 3:
        repo_type, segs = _PREFIXES[segs[0]], segs[1:]
    if len(segs) < 3:
        return "other", _not_found
    ns, name = unquote(segs[0]), unquote(segs[1])
    if name.endswith(".git") and segs[2:5] == ["info", "lfs", "objects"] and method == "POST":
        repo = repo_ref(repo_type, f"{ns}/{name.removesuffix('.git')}")
        if segs[5:] == ["batch"]:
            return "lfs-batch", partial(_write.lfs_batch, repo=repo)
        if segs[5:] == ["verify"]:
            return "lfs-verify", partial(_write.lfs_verify, repo=repo)
    if segs[2] in ("resolve", "raw") and method in ("GET", "HEAD"):
        split = split_revision(segs[3:])
        if split is not None and split[1]:
            repo = repo_ref(repo_type, f"{ns}/{name}")
            kind = "resolve" if segs[2] == "resolve" else "raw"
            return kind, partial(
                _read.resolve, repo=repo, rev=split[0], path=join_path(split[1]), raw=segs[2] == "raw"
            )
    return "other", _not_found


class HubServer:
    """Both listeners over one root folder. Use as an async context manager, or start()/aclose()."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        testing = config.testing or os.environ.get("BATUTA_SERVE_TESTING") == "1"
        stats = Stats(config.request_log_size)
        store = Store.from_config(config)
        store.sweep_tmp()
        self.svc = Services(
            config=config,
            store=store,
            faults=FaultState(on_fire=stats.fired),
            stats=stats,
            ratelimit=RateLimiter(
                {"api": config.rate_limit_api, "resolvers": config.rate_limit_resolvers},
                config.rate_limit_window_s,
            ),
            signer=Signer(secrets.token_bytes(32), config.signed_url_ttl_s),
            testing=testing,
        )
        self.url = ""
        self.blob_url = ""
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        cfg = self.config
        api = web.Application(client_max_size=cfg.max_inline_commit_bytes)
        api.router.add_route("*", "/{tail:.*}", self._dispatch_api)
        blob = web.Application()
        blob.router.add_route("*", "/{tail:.*}", self._dispatch_blob)
        for app in (api, blob):
            app.on_response_prepare.append(self._on_prepare)
        try:
            api_port = await self._listen(api, cfg.host, cfg.port)
            blob_host = "127.0.0.1" if cfg.host == "localhost" else cfg.host
            self.svc.blob_port = await self._listen(blob, blob_host, cfg.blob_port)
        except BaseException:
            await self.aclose()
            raise
        shown = "127.0.0.1" if cfg.host in ("0.0.0.0", "") else cfg.host
        self.url = f"http://{shown}:{api_port}"
        self.blob_url = f"http://{other_loopback(shown)}:{self.svc.blob_port}"

    async def _listen(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        # Binding the socket ourselves tells us the port the OS picked for port 0.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Two listeners: a message must say which address could not be taken. The name is
        # resolved first so that a bad host gets the resolver's own words: bind() reports its
        # EAI_* code as an errno, which os.strerror() knows nothing of ("Unknown error -2").
        try:
            infos = socket.getaddrinfo(host or None, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
        try:
            sock = socket.create_server(infos[0][4], family=family, reuse_port=False)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from None
        await web.SockSite(runner, sock).start()
        return int(sock.getsockname()[1])

    async def aclose(self) -> None:
        while self._runners:
            await self._runners.pop().cleanup()
        self.svc.store.hashes.save()

    async def __aenter__(self) -> HubServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- pipelines ------------------------------------------------------------------------
    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("X-Request-Id", f"Root=1-{uuid.uuid4().hex[:24]}")
        for key, value in request.get(EXTRA_HEADERS, {}).items():
            response.headers.setdefault(key, value)
        # Recorded before the body goes out, so a client never sees a response the stats miss.
        if (slot := request.get(STATS_SLOT)) is not None:
            self.svc.stats.finish(slot, response.status)

    async def _dispatch_api(self, request: web.Request) -> web.StreamResponse:
        svc = self.svc
        raw_path, _, query = request.raw_path.partition("?")
        kind, handler = match_api(request.method, raw_path)
        auth = request.headers.get("Authorization")
        if kind != "admin" and (found := legacy_location(svc.store, raw_path)) is not None:
            location, target = found
            # A redirect tells that the target exists: only for a caller who may read it. Others
            # get what the name they sent gives, the answer for a repo that does not exist.
            token = _bearer(auth)
            if may_read(svc.store, svc.store.tokens.get(token) if token else None, target):
                redirect = partial(_redirect, location=location + (f"?{query}" if query else ""))
                kind, handler = "legacy", redirect
        if kind == "admin" and svc.testing:
            handler = partial(_admin, segs=raw_path.split("/")[2:])
        if kind != "admin":  # a test reading its counters must not change them
            request[STATS_SLOT] = svc.stats.begin(
                request.method,
                kind,
                request.path,
                request.raw_path,
                request.headers.get("Range"),
                auth is not None,
            )
        try:
            ctx = Ctx(svc, request, kind, unquote(request.raw_path), None)
            if kind != "admin":
                if latency := svc.faults.api_latency_s:
                    await anyio.sleep(latency)
                self._gate(ctx, auth)
            resp = await handler(ctx)
        except HubHTTPError as exc:
            resp = exc.response()
        except UsageError as exc:
            resp = HubHTTPError(400, str(exc)).response()
        except ConnectionError:
            raise
        except Exception as exc:
            log.exception("internal error on %s %s", request.method, request.raw_path)
            resp = HubHTTPError(500, f"internal server error: {exc!r}").response()
        return resp

    def _gate(self, ctx: Ctx, auth: str | None) -> None:
        """Rate limit, injected failures, then the token: the order a real front end checks them."""
        svc, request = self.svc, ctx.request
        token = _bearer(auth)
        bucket = "resolvers" if ctx.kind in ("resolve", "raw") else "api"
        allowed, headers = svc.ratelimit.hit(bucket, token or request.remote or "")
        request[EXTRA_HEADERS] = headers
        if not allowed:
            svc.stats.fired("rate-limit")
            raise HubHTTPError(429, "You have exceeded our rate limit quota. Retry later.")
        if (failure := svc.faults.take_failure(ctx.target)) is not None:
            status, retry_after = failure
            extra = {"Retry-After": retry_after} if retry_after else {}
            raise HubHTTPError(status, f"injected failure {status}", headers=extra)
        if auth is not None:
            info = svc.store.tokens.get(token) if token else None
            if info is None:
                raise HubHTTPError(401, "Invalid credentials in Authorization header")
            ctx.token = info

    async def _dispatch_blob(self, request: web.Request) -> web.StreamResponse:
        svc = self.svc
        segs = request.raw_path.split("?", 1)[0].split("/")[1:]
        kind = _blob.route_kind(segs)
        target = unquote(request.raw_path)
        slot = svc.stats.begin(
            request.method, kind, request.path, request.raw_path, request.headers.get("Range"),
            "Authorization" in request.headers,
        )  # fmt: skip
        request[STATS_SLOT] = slot
        if (failure := svc.faults.take_failure(target)) is not None:
            status, retry_after = failure
            resp: web.StreamResponse = web.Response(
                status=status,
                text=f"injected failure {status}",
                headers={"Retry-After": retry_after} if retry_after else {},
            )
        else:
            resp = await _blob.handle(svc, request, segs, target)
        return resp


def _bearer(auth: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    return auth.split(" ", 1)[1].strip() if auth and auth.lower().startswith("bearer ") else None


async def _redirect(ctx: Ctx, location: str) -> web.StreamResponse:
    return web.Response(status=307, headers={"Location": location})


async def _admin(ctx: Ctx, segs: list[str]) -> web.StreamResponse:
    """Test-only controls: `/_batuta/stats`, `/faults`, `/reset`, `/rate-limit`, `/tokens`, `/invalidate`."""
    svc, method = ctx.svc, ctx.request.method
    data = {}
    if method == "POST" and ctx.request.can_read_body:
        data = json.loads(await ctx.request.read() or b"{}")
    if segs == ["stats"] and method == "GET":
        return json_response(svc.stats.snapshot().to_json())
    if segs == ["faults"] and method == "POST":
        svc.faults.apply_json(data)
        return json_response({"ok": True})
    if segs == ["reset"] and method == "POST":
        svc.faults.reset()
        svc.stats.reset()
        svc.ratelimit.reset()
        return json_response({"ok": True})
    if segs == ["rate-limit"] and method == "POST":
        for bucket, quota in data.items():
            svc.ratelimit.set_quota(str(bucket), int(quota))
        return json_response({"ok": True})
    if segs == ["tokens"] and method == "POST":
        from engine.server._auth import TokenInfo

        svc.store.tokens.add(
            TokenInfo(
                str(data["token"]), str(data["user"]), str(data.get("role", "read")), bool(data.get("gated"))
            )
        )
        return json_response({"ok": True})
    if segs == ["invalidate"] and method == "POST":
        svc.store.invalidate()
        return json_response({"ok": True})
    raise HubHTTPError(404, "unknown admin route")

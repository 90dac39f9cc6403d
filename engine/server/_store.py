"""The root folder as a set of repos: discovery, metadata, branches and content snapshots.

See LAYOUT.md for the folder layout. The main branch of a repo is the plain folder
`<root>/<type>s/<ns>/<name>/`; other branches live under `<root>/.batuta/branches/` and tags
(frozen copies, named `refs/tags/<tag>` as refs) under `<root>/.batuta/tags/`. A branch's
commit id is derived from its content (`_rules.commit_id`), so files copied in by hand need no
registration: the next request sees a new commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

import anyio

from engine._errors import UsageError
from engine._models import REPO_TYPES, RepoRef, RepoType, validate_repo_id
from engine.server._auth import TokenBook
from engine.server._watched import WatchedJson

if TYPE_CHECKING:
    from engine.server import ServerConfig
from engine.server._hashing import FileDigest, HashCache
from engine.server._rules import (
    LFS_SIZE_THRESHOLD_BYTES,
    commit_id,
    git_blob_sha1,
    is_lfs,
    lfs_pointer,
    tree_oid,
)

MAIN = "main"
TAG_PREFIX = "refs/tags/"
TMP_SUFFIX = ".batuta-tmp"
TMP_MAX_AGE_S = 24 * 3600  # older temp entries belong to uploads nobody will finish
META_SUFFIX = ".meta.json"  # a repo's settings sit beside its folder: `<name>.meta.json`
IGNORED_NAMES = frozenset({".git", ".batuta"})
HEX40 = re.compile(r"^[0-9a-f]{40}$")
COLLECTIONS: dict[RepoType, str] = {"model": "models", "dataset": "datasets", "space": "spaces"}
ALIASES_FILE = "aliases.json"  # {"models": {"gpt2": "openai-community/gpt2"}, "datasets": {...}}


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a branch as the Hub would describe it."""

    path: str
    abs_path: str
    size: int
    oid: str  # git blob id shown in trees; for LFS files the id of the pointer blob
    sha256: str | None  # set iff the file is served as LFS
    mtime: float

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        return self.sha256 or self.oid

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256 or "", self.size))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A branch's files at one moment, with the commit id they hash to."""

    repo: RepoRef
    branch: str
    commit: str
    files: Mapping[str, Entry]  # sorted by path
    last_modified: float

    def dirs(self) -> dict[str, str]:
        """Every folder path (not the root) mapped to a deterministic tree oid."""
        children: dict[str, list[tuple[str, str]]] = {}
        for e in self.files.values():
            parts = e.path.split("/")
            for i in range(1, len(parts)):
                children.setdefault("/".join(parts[:i]), [])
            if len(parts) > 1:
                children["/".join(parts[:-1])].append((parts[-1], e.oid))
        oids: dict[str, str] = {}
        # Deepest folders first, so each parent sees the final oids of its subfolders.
        for d in sorted(children, key=lambda p: -p.count("/")):
            oids[d] = tree_oid(children[d])
            if "/" in d:
                parent, name = d.rsplit("/", 1)
                children[parent].append((name, oids[d]))
        return dict(sorted(oids.items()))


@dataclass(slots=True)
class _Memo:
    snapshot: Snapshot
    dir_mtimes: list[tuple[str, int]]
    made_at: float


@dataclass(slots=True)
class _Plan:
    items: list[tuple[str, str, os.stat_result, bool, FileDigest]] = field(default_factory=list)
    dir_mtimes: list[tuple[str, int]] = field(default_factory=list)


def _parse_aliases(raw: Mapping[str, object]) -> dict[tuple[RepoType, str], str]:
    out: dict[tuple[RepoType, str], str] = {}
    for repo_type in REPO_TYPES:
        table = raw.get(COLLECTIONS[repo_type])
        if isinstance(table, Mapping):
            out.update(((repo_type, str(k)), v) for k, v in table.items() if isinstance(v, str) and "/" in v)
    return out


def _set_alias(data: dict[str, object], collection: str, name: str, repo_id: str) -> None:
    table = data.get(collection)
    data[collection] = {**(table if isinstance(table, dict) else {}), name: repo_id}


def repo_ref(repo_type: str, repo_id: str) -> RepoRef:
    """A RepoRef from URL parts; raise UsageError on a malformed id."""
    if repo_type not in REPO_TYPES:
        raise UsageError(f"unknown repo type '{repo_type}'")
    return RepoRef(repo_type, validate_repo_id(repo_id))


class Store:
    """Repos under one root folder. Blocking calls are cheap (stat, small reads) unless noted."""

    def __init__(
        self,
        root: Path,
        *,
        lfs_size_threshold: int = LFS_SIZE_THRESHOLD_BYTES,
        thread_hash_bytes: int = 4 * 1024 * 1024,
        snapshot_ttl_s: float = 1.0,
    ) -> None:
        self.root = root.resolve()
        self.state = self.root / ".batuta"
        self.tmp_dir = self.state / "tmp"
        self.lfs_threshold = lfs_size_threshold
        self.thread_hash_bytes = thread_hash_bytes
        self.snapshot_ttl_s = snapshot_ttl_s
        self.hashes = HashCache(self.root, self.state / "hashes.json")
        self.tokens = TokenBook(self.root / "tokens.json")
        self.aliases = WatchedJson(self.root / ALIASES_FILE, _parse_aliases)
        self._memo: dict[tuple[RepoRef, str], _Memo] = {}
        self._memo_lock = threading.Lock()
        self._inflight: dict[str, anyio.Event] = {}
        self._hash_limiter: anyio.CapacityLimiter | None = None

    # ---- layout ---------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: ServerConfig) -> Store:
        """The store a server with `config` uses (the test harness needs the very same rules)."""
        return cls(
            config.root,
            lfs_size_threshold=config.lfs_size_threshold_bytes,
            thread_hash_bytes=config.thread_hash_bytes,
            snapshot_ttl_s=config.snapshot_ttl_s,
        )

    def repo_dir(self, repo: RepoRef) -> Path:
        ns, name = repo.repo_id.split("/")
        return self.root / COLLECTIONS[repo.repo_type] / ns / name

    def meta_file(self, repo: RepoRef) -> Path:
        ns, name = repo.repo_id.split("/")
        return self.root / COLLECTIONS[repo.repo_type] / ns / f"{name}{META_SUFFIX}"

    def branches_root(self, repo: RepoRef) -> Path:
        return self.state / "branches" / COLLECTIONS[repo.repo_type] / repo.repo_id

    def tags_root(self, repo: RepoRef) -> Path:
        return self.state / "tags" / COLLECTIONS[repo.repo_type] / repo.repo_id

    def branch_dir(self, repo: RepoRef, branch: str) -> Path:
        """The folder of a ref: `main`, another branch, `refs/pr/N`, or a tag as `refs/tags/<t>`."""
        if branch == MAIN:
            return self.repo_dir(repo)
        if branch.startswith(TAG_PREFIX):
            return self.tags_root(repo) / quote(branch.removeprefix(TAG_PREFIX), safe="")
        return self.branches_root(repo) / quote(branch, safe="")

    def discussions_file(self, repo: RepoRef) -> Path:
        return self.state / "discussions" / COLLECTIONS[repo.repo_type] / f"{repo.repo_id}.json"

    def commits_file(self, repo: RepoRef) -> Path:
        return self.state / "commits" / COLLECTIONS[repo.repo_type] / f"{repo.repo_id}.jsonl"

    def lfs_path(self, sha256: str) -> Path:
        return self.state / "lfs" / sha256[:2] / sha256

    def sweep_tmp(self, max_age_s: float = TMP_MAX_AGE_S) -> None:
        """Remove temp entries older than `max_age_s`: the multipart parts and half-written files of
        uploads whose client went away (a killed push leaves its parts behind)."""
        cutoff = time.time() - max_age_s
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.tmp_dir):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        if entry.is_dir(follow_symlinks=False):
                            shutil.rmtree(entry.path, ignore_errors=True)
                        else:
                            os.unlink(entry.path)

    def new_tmp(self, hint: str = "") -> Path:
        """A fresh path in the server's temp area (same filesystem as the repos, never scanned)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.tmp_dir / f"{hint}{uuid.uuid4().hex}{TMP_SUFFIX}"

    # ---- discovery and metadata -----------------------------------------------------------
    def canonical_id(self, repo_type: RepoType, name: str) -> str | None:
        """The `namespace/name` a legacy bare id (`gpt2`) stands for, from `aliases.json`."""
        return self.aliases.get().get((repo_type, name))

    def add_alias(self, repo_type: RepoType, name: str, repo_id: str) -> None:
        validate_repo_id(name, legacy=True)
        validate_repo_id(repo_id)
        self.aliases.update(lambda data: _set_alias(data, COLLECTIONS[repo_type], name, repo_id))

    def canonical_case(self, repo_type: RepoType, repo_id: str) -> str | None:
        """The stored spelling of `repo_id` when only a case variant of it exists, else None.

        The Hub matches ids case-insensitively and redirects to the canonical spelling; a scan is
        only made when the exact folder is missing, so requests for existing repos cost one stat.
        """
        ns, _, name = repo_id.partition("/")
        top = self.root / COLLECTIONS[repo_type]
        if not name or (top / ns / name).is_dir():
            return None
        for ns_dir in _case_variants(top, ns):
            for repo_dir in _case_variants(ns_dir, name):
                with contextlib.suppress(UsageError):
                    return repo_ref(repo_type, f"{ns_dir.name}/{repo_dir.name}").repo_id
        return None

    def exists(self, repo: RepoRef) -> bool:
        return self.repo_dir(repo).is_dir()

    def list_repos(self, repo_type: RepoType) -> list[RepoRef]:
        top = self.root / COLLECTIONS[repo_type]
        out: list[RepoRef] = []
        for ns in sorted(top.iterdir()) if top.is_dir() else []:
            if not ns.is_dir():
                continue
            for d in sorted(ns.iterdir()):
                if d.is_dir():
                    with contextlib.suppress(UsageError):
                        out.append(repo_ref(repo_type, f"{ns.name}/{d.name}"))
        return out

    def meta(self, repo: RepoRef) -> dict[str, object]:
        try:
            data = json.loads(self.meta_file(repo).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_meta(self, repo: RepoRef, meta: Mapping[str, object]) -> None:
        path = self.meta_file(repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.new_tmp("meta-")
        tmp.write_text(json.dumps(dict(meta), indent=2, sort_keys=True))
        os.replace(tmp, path)

    def branches(self, repo: RepoRef) -> list[str]:
        return [MAIN, *(b for b in _ref_names(self.branches_root(repo)) if b != MAIN)]

    def tags(self, repo: RepoRef) -> list[str]:
        return _ref_names(self.tags_root(repo))

    def commit_log(self, repo: RepoRef) -> list[dict[str, object]]:
        """Commits recorded by the write API, oldest first (hand edits leave no record)."""
        try:
            lines = self.commits_file(repo).read_text().splitlines()
        except OSError:
            return []
        out: list[dict[str, object]] = []
        for line in lines:
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def record_commit(self, repo: RepoRef, record: Mapping[str, object]) -> None:
        path = self.commits_file(repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(dict(record), sort_keys=True) + "\n")

    def commit_info(self, snap: Snapshot) -> dict[str, object]:
        """`{id, title, message, date}` of the head commit of `snap`."""
        for rec in reversed(self.commit_log(snap.repo)):
            if rec.get("id") == snap.commit:
                return rec
        return {"id": snap.commit, "title": "Update files", "message": "", "date": snap.last_modified}

    # ---- snapshots ------------------------------------------------------------------------
    def invalidate(self, repo: RepoRef | None = None) -> None:
        with self._memo_lock:
            if repo is None:
                self._memo.clear()
            else:
                for key in [k for k in self._memo if k[0] == repo]:
                    del self._memo[key]

    def snapshot_sync(self, repo: RepoRef, branch: str = MAIN) -> Snapshot | None:
        """The branch's snapshot, hashing in the calling thread (for harness code, not the loop)."""
        if (memo := self._memo_hit(repo, branch)) is not None:
            return memo
        plan = self._plan(self.branch_dir(repo, branch))
        if plan is None:
            return None
        for i, (rel, path, st, lfs, d) in enumerate(plan.items):
            if (d.sha256 if lfs else d.sha1) is None:
                plan.items[i] = (rel, path, st, lfs, self.hashes.compute(path, sha1=not lfs, sha256=lfs))
        return self._finish(repo, branch, plan)

    async def snapshot(self, repo: RepoRef, branch: str = MAIN) -> Snapshot | None:
        """The branch's snapshot; files above `thread_hash_bytes` are hashed in worker threads."""
        if (memo := self._memo_hit(repo, branch)) is not None:
            return memo
        plan = self._plan(self.branch_dir(repo, branch))
        if plan is None:
            return None
        missing = [
            i for i, (_, _, _, lfs, d) in enumerate(plan.items) if (d.sha256 if lfs else d.sha1) is None
        ]
        big = [i for i in missing if plan.items[i][2].st_size >= self.thread_hash_bytes]
        for i in missing:
            if i not in big:
                rel, path, st, lfs, _ = plan.items[i]
                plan.items[i] = (rel, path, st, lfs, self.hashes.compute(path, sha1=not lfs, sha256=lfs))
        if big:
            async with anyio.create_task_group() as tg:
                for i in big:
                    tg.start_soon(self._hash_item, plan, i)
        return self._finish(repo, branch, plan)

    async def _hash_item(self, plan: _Plan, i: int) -> None:
        rel, path, st, lfs, _ = plan.items[i]
        # Two requests for the same new file share one read of it.
        while (ev := self._inflight.get(path)) is not None:
            await ev.wait()
        d = self.hashes.lookup(path, st)
        if d is None or (d.sha256 if lfs else d.sha1) is None:
            ev = self._inflight[path] = anyio.Event()
            try:
                if self._hash_limiter is None:
                    self._hash_limiter = anyio.CapacityLimiter(2)
                job = partial(self.hashes.compute, path, sha1=not lfs, sha256=lfs)
                d = await anyio.to_thread.run_sync(job, limiter=self._hash_limiter)
            finally:
                del self._inflight[path]
                ev.set()
        plan.items[i] = (rel, path, st, lfs, d)

    def _memo_hit(self, repo: RepoRef, branch: str) -> Snapshot | None:
        with self._memo_lock:
            memo = self._memo.get((repo, branch))
        if memo is None or time.monotonic() - memo.made_at > self.snapshot_ttl_s:
            return None
        # Adding, removing or renaming a file changes its folder's mtime; in-place edits show
        # up once the memo ages out.
        for path, mtime_ns in memo.dir_mtimes:
            try:
                if os.stat(path).st_mtime_ns != mtime_ns:
                    return None
            except OSError:
                return None
        return memo.snapshot

    def _plan(self, top: Path) -> _Plan | None:
        if not top.is_dir():
            return None
        plan = _Plan()
        files: list[tuple[str, str, os.stat_result]] = []
        seen: set[tuple[int, int]] = set()
        stack = [("", str(top))]
        while stack:
            rel, absdir = stack.pop()
            try:
                dst = os.stat(absdir)
                it = os.scandir(absdir)
            except OSError:
                continue
            if (dst.st_dev, dst.st_ino) in seen:
                continue  # a symlink loop
            seen.add((dst.st_dev, dst.st_ino))
            plan.dir_mtimes.append((absdir, dst.st_mtime_ns))
            with it:
                for de in it:
                    # Temp files live in the server's own area (new_tmp), never here: a user's file
                    # may end in TMP_SUFFIX and must still be listed.
                    if de.name in IGNORED_NAMES:
                        continue
                    try:
                        if de.is_dir():
                            stack.append((f"{rel}{de.name}/", de.path))
                            continue
                        st = de.stat()
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        files.append((f"{rel}{de.name}", de.path, st))
        files.sort()
        gitattributes: str | None = None
        for rel, path, _ in files:
            if rel == ".gitattributes":
                with contextlib.suppress(OSError):
                    gitattributes = Path(path).read_text(errors="replace")
        for rel, path, st in files:
            try:
                d = self.hashes.sample(path, st)
            except OSError:
                continue
            sample = b"\x00" if d.binary_sample else b""
            lfs = is_lfs(rel, st.st_size, sample, gitattributes, size_threshold=self.lfs_threshold)
            plan.items.append((rel, path, st, lfs, d))
        return plan

    def _finish(self, repo: RepoRef, branch: str, plan: _Plan) -> Snapshot:
        entries: dict[str, Entry] = {}
        for rel, path, st, lfs, d in plan.items:
            if lfs:
                assert d.sha256 is not None
                oid = git_blob_sha1(lfs_pointer(d.sha256, st.st_size))
            else:
                assert d.sha1 is not None
                oid = d.sha1
            entries[rel] = Entry(rel, path, st.st_size, oid, d.sha256 if lfs else None, st.st_mtime_ns / 1e9)
        last = max((e.mtime for e in entries.values()), default=0.0)
        if not entries:
            with contextlib.suppress(OSError):
                last = self.branch_dir(repo, branch).stat().st_mtime
        snap = Snapshot(repo, branch, commit_id((e.path, e.oid) for e in entries.values()), entries, last)
        with self._memo_lock:
            self._memo[(repo, branch)] = _Memo(snap, plan.dir_mtimes, time.monotonic())
        return snap

    async def resolve(self, repo: RepoRef, rev: str) -> Snapshot | None:
        """The snapshot a revision names: a branch (or `refs/heads/<b>`), a tag (or `refs/tags/<t>`),
        or the commit id of a branch head or tag. A branch wins over a tag of the same name."""
        branches = self.branches(repo)
        if (name := rev.removeprefix("refs/heads/")) in branches:
            return await self.snapshot(repo, name)
        tags = self.tags(repo)  # only listed when the revision is not a branch, the common case
        if (name := rev.removeprefix(TAG_PREFIX)) in tags:
            return await self.snapshot(repo, TAG_PREFIX + name)
        if HEX40.match(rev):
            for ref in [*branches, *(TAG_PREFIX + t for t in tags)]:
                snap = await self.snapshot(repo, ref)
                if snap is not None and snap.commit == rev:
                    return snap
        return None

    # ---- LFS objects ----------------------------------------------------------------------
    def locate_blob(self, sha256: str) -> tuple[str, int] | None:
        """A file holding the content with this sha256: the LFS store first, then any repo file."""
        path = str(self.lfs_path(sha256))
        with contextlib.suppress(OSError):
            st = os.stat(path)
            known = self.hashes.lookup(path, st)
            # Store objects are verified on upload; a stale digest means someone edited it in place.
            if known is None or known.sha256 == sha256:
                return path, st.st_size
        for cand in self.hashes.paths_for_sha256(sha256):
            with contextlib.suppress(OSError):
                st = os.stat(cand)
                if (d := self.hashes.lookup(cand, st)) is not None and d.sha256 == sha256:
                    return cand, st.st_size
        return None

    # ---- harness helpers ------------------------------------------------------------------
    def write_files(
        self,
        repo: RepoRef,
        files: Mapping[str, bytes | str | Path],
        *,
        branch: str = MAIN,
        replace: bool = True,
    ) -> None:
        """Write files into a branch folder, as a person copying them in would (blocking)."""
        top = self.branch_dir(repo, branch)
        if replace and top.exists():
            shutil.rmtree(top)
        top.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            dest = top / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.new_tmp("add-")
            if isinstance(content, Path):
                try:
                    os.link(content, tmp)
                except OSError:
                    shutil.copyfile(content, tmp)
            else:
                tmp.write_bytes(content.encode() if isinstance(content, str) else content)
            os.replace(tmp, dest)
        self.invalidate(repo)


def _ref_names(top: Path) -> list[str]:
    """The branch or tag names stored as %-encoded folders under `top`, sorted."""
    return sorted(unquote(d.name) for d in top.iterdir() if d.is_dir()) if top.is_dir() else []


def _case_variants(folder: Path, name: str) -> list[Path]:
    """Sub-folders of `folder` whose name equals `name` ignoring case, in a stable order."""
    want = name.lower()
    try:
        with os.scandir(folder) as it:  # names first: a stat only for the few that match
            return sorted(Path(e.path) for e in it if e.name.lower() == want and e.is_dir())
    except OSError:
        return []


def iter_prefixed(paths: Iterable[str], folder: str) -> list[str]:
    """The paths inside `folder` (a repo path without trailing slash; "" is the root)."""
    if not folder:
        return list(paths)
    prefix = folder.rstrip("/") + "/"
    return [p for p in paths if p.startswith(prefix)]

"""pull: list a snapshot once, select files, skip what is present, fetch the rest in parallel."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import anyio

from engine._api import validate_revision, with_scan_verdicts
from engine._cache import LocalDir, RepoCache, apply_umask_mode, exclusive_lock
from engine._download import Downloader, FileJob, drop_partial
from engine._errors import (
    BatutaError,
    HubError,
    HubServerError,
    OfflineError,
    TransportError,
    UsageError,
)
from engine._events import FileFailed, FileFinished, FileStarted, Notice, PlanReady
from engine._hub import Ctx
from engine._models import RemoteFile, RepoRef, validate_repo_id
from engine._select import SelectionResult, Skipped, first_few, select_files

if TYPE_CHECKING:
    from engine._engine import Engine

Action = Literal["download", "present", "link"]
LOCK_POLL_S = 0.2
SIBLINGS_LIMIT = 50_000  # the Hub's own client lists the tree beyond this many siblings


@dataclass(frozen=True, slots=True)
class PullOptions:
    revision: str = "main"
    output: Path | None = None  # None: the HF cache
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    quantization: str | None = None
    allow_unsafe: bool = False
    dry_run: bool = False
    paths: tuple[str, ...] = ()  # exact repo paths; empty: the whole repo
    force: bool = False  # fetch every selected file again, even when present and verified


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: str
    size: int
    lfs: bool
    action: Action


@dataclass(frozen=True, slots=True)
class FailedFile:
    path: str
    reason: str
    kind: str  # the error class name, e.g. "IntegrityError"


@dataclass(frozen=True, slots=True)
class BlockedFile:
    path: str
    size: int
    reason: str


@dataclass
class PullResult:
    repo: str
    repo_type: str
    revision: str
    commit: str
    destination: str
    dry_run: bool
    files: list[PlannedFile]
    blocked: list[BlockedFile]
    allowed_unsafe: list[BlockedFile] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    failed: list[FailedFile] = field(default_factory=list)
    bytes_downloaded: int = 0
    seconds: float = 0.0
    retries: int = 0
    # Set when the Hub could not be reached and the answer came from a complete cached snapshot.
    hub_unreachable: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def skipped(self) -> list[str]:
        """Files not fetched by this run and not failed: present before, or fetched meanwhile by
        another process this one waited for."""
        if self.dry_run:
            return [f.path for f in self.files if f.action != "download"]
        done = {*self.downloaded, *(f.path for f in self.failed)}
        return [f.path for f in self.files if f.path not in done]

    @property
    def ok(self) -> bool:
        return not self.failed


def _blocked(items: tuple[Skipped, ...]) -> list[BlockedFile]:
    return [BlockedFile(s.file.path, s.file.size, s.reason) for s in items]


async def pull(engine: Engine, ref: RepoRef, opts: PullOptions) -> PullResult:
    """Download the selected files of `ref` at `opts.revision`; see the module docstring."""
    started = time.monotonic()
    validate_revision(opts.revision)
    config = engine.config
    cache = RepoCache(config.hub_cache, ref)
    local = LocalDir(opts.output) if opts.output is not None else None
    if config.offline:
        if opts.force:
            raise UsageError("--force-download needs the network, and offline mode is on (HF_HUB_OFFLINE)")
        return _pull_offline(ref, opts, cache, local).result

    @functools.cache
    def from_disk() -> _OnDisk | None:
        # Worked out on the first failure only: a pull that reaches the Hub never pays for it.
        try:
            return _pull_offline(ref, opts, cache, local, listed_only=True)
        except OfflineError:
            return None

    # One request gives the commit and, through `blobs=true` siblings, every file with its size
    # and digests; the tree listing is only needed when siblings are missing or incomplete.
    try:
        # A Hub that cannot even be connected to, while the disk holds the answer, is not waited
        # for through the retry schedule (half a minute) as one that answers 5xx is: an air-gapped
        # runner without HF_HUB_OFFLINE falls back at once, as with the official client.
        info = await engine.api.repo_info(
            ref,
            opts.revision,
            blobs=True,
            answered_locally=None if opts.force else lambda: from_disk() is not None,
        )
    except (TransportError, HubServerError) as exc:
        # No network, or the Hub is down: a snapshot already complete in the cache still answers,
        # as it does for the official client. Anything less is the network error itself, and so
        # is a fresh copy asked for with --force-download.
        if opts.force or (answer := from_disk()) is None:
            raise
        result = answer.result
        result.hub_unreachable = str(exc)
        result.retries = engine.client.retries
        result.seconds = time.monotonic() - started
        engine.on_event(Notice(f"the Hub could not be reached ({exc}): using {answer.basis}"))
        return result
    commit = info.sha
    # A legacy bare id (`gpt2`) answers with its `namespace/name`: file URLs use that and save a
    # redirect per file, while the cache stays keyed by what was asked, as the official client's is.
    remote = ref
    if "/" not in ref.repo_id:
        with contextlib.suppress(UsageError):
            remote = ref._replace(repo_id=validate_repo_id(info.id))
    if info.files and len(info.files) < SIBLINGS_LIMIT and all(f.blob_id for f in info.files):
        files = list(info.files)
    else:
        files = await engine.api.list_tree(remote, commit)
    files = with_scan_verdicts(files, info.raw)
    selection = _select(files, ref, opts)
    planned = [
        PlannedFile(f.path, f.size, f.is_lfs, "download" if opts.force else _action(f, commit, cache, local))
        for f in selection.selected
    ]
    destination = str(opts.output if local else cache.snapshot(commit))
    result = PullResult(
        ref.repo_id,
        ref.repo_type,
        opts.revision,
        commit,
        destination,
        opts.dry_run,
        planned,
        _blocked(selection.blocked),
        _blocked(selection.allowed_unsafe),
    )
    todo = [p for p in planned if p.action != "present"]
    engine.on_event(
        PlanReady(len(planned), result.total_bytes, len(planned) - len(todo), len(result.blocked))
    )
    for b in result.blocked:
        engine.on_event(Notice(f"blocked {b.path}: {b.reason} (use --allow-unsafe to download it)"))
    if opts.dry_run:
        return result

    if local is None:
        for folder in (cache.snapshot(commit), cache.folder / "blobs", cache.lock("x").parent):
            folder.mkdir(parents=True, exist_ok=True)
        cache.ensure_tag()
        cache.write_ref(opts.revision, commit)
        cache.write_tree(commit, files)
    else:
        local.root.mkdir(parents=True, exist_ok=True)
        local.ensure_layout()
        local.write_snapshot(ref, opts.revision, commit, files)
    fetching = {t.path for t in todo}
    _drop_stale_partials([f for f in selection.selected if f.path not in fetching], cache, local)

    by_path = {f.path: f for f in selection.selected}
    downloader = Downloader(engine.client, config, on_event=engine.on_event)
    errors: list[BaseException] = []
    files_limiter = anyio.CapacityLimiter(config.max_connections)
    # --force-download: the blobs fetched again by this run (paths sharing one are fetched once).
    forced: set[str] | None = set() if opts.force else None

    async def run_one(p: PlannedFile) -> None:
        f = by_path[p.path]
        async with files_limiter:
            engine.on_event(FileStarted(p.path, p.size))
            try:
                fetched = await _materialize(engine, remote, commit, f, cache, local, downloader, forced)
            except (BatutaError, OSError) as exc:
                # OSError: the destination, not the network (a folder in the way, a full disk).
                reason = str(exc) if isinstance(exc, BatutaError) else _os_reason(exc)
                errors.append(exc)
                result.failed.append(FailedFile(p.path, reason, type(exc).__name__))
                engine.on_event(FileFailed(p.path, reason))
                return
            if fetched:
                result.downloaded.append(p.path)
            engine.on_event(FileFinished(p.path, skipped=not fetched))

    # Large files first: their ranges keep every connection busy while small files fill the gaps.
    async with anyio.create_task_group() as tg:
        for p in sorted(todo, key=lambda p: -p.size):
            tg.start_soon(run_one, p)

    result.bytes_downloaded = downloader.bytes_fetched
    result.retries = engine.client.retries
    result.seconds = time.monotonic() - started
    if errors and len(errors) == len(todo) and len({type(e) for e in errors}) == 1:
        # Every file failed the same way at the Hub (gated, forbidden, unreachable): that is the
        # answer for the whole repo. A local disk error or a digest mismatch stays a failed file,
        # so the same failure exits the same way whatever else this run had to fetch.
        if isinstance(errors[0], (HubError, TransportError)):
            raise errors[0]
    return result


def _os_reason(exc: OSError) -> str:
    # `No space left on device`, not `[Errno 28] No space left on device`.
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason


def _select(files: list[RemoteFile], ref: RepoRef, opts: PullOptions) -> SelectionResult:
    return select_files(
        files,
        repo=ref.repo_id,
        include=opts.include,
        exclude=opts.exclude,
        quantization=opts.quantization,
        allow_unsafe=opts.allow_unsafe,
        paths=opts.paths,
    )


def _action(f: RemoteFile, commit: str, cache: RepoCache, local: LocalDir | None) -> Action:
    if local is not None:
        return "present" if local.is_current(f.path, f.etag, f.size) else "download"
    if cache.has_snapshot_file(commit, f.path, f.etag):
        return "present"
    return "link" if cache.blob(f.etag).exists() else "download"


async def _materialize(
    engine: Engine,
    ref: RepoRef,
    commit: str,
    f: RemoteFile,
    cache: RepoCache,
    local: LocalDir | None,
    downloader: Downloader,
    forced: set[str] | None = None,
) -> bool:
    """Make `f` present at its destination; return True when bytes were fetched.

    With `forced` (--force-download), the bytes are fetched and verified again and replace what
    is there, once per blob of the cache: `forced` collects the blobs this run fetched.
    """
    url = engine.api.resolve_url(ref, commit, f.path)
    ctx = Ctx(ref.repo_id, commit, f.path)
    if local is not None:
        target = local.target(f.path)
        lock_path = local.lock(f.path)
    else:
        target = cache.blob(f.etag)
        lock_path = cache.lock(f.etag)
    while True:
        with exclusive_lock(lock_path) as held:
            if held:
                force = forced is not None and (local is not None or f.etag not in forced)
                if local is not None:
                    if target.is_dir() and not target.is_symlink():
                        raise IsADirectoryError(errno.EISDIR, "a folder is where the file goes", str(target))
                    if not force and local.is_current(f.path, f.etag, f.size):
                        drop_partial(local.incomplete(f.path, f.etag))
                        return False
                    if not force and await anyio.to_thread.run_sync(_content_matches, target, f):
                        local.write_metadata(f.path, commit, f.etag)
                        return False
                    job = FileJob(f, url, local.incomplete(f.path, f.etag), ctx)
                elif not force and target.exists():
                    # Another process finished the blob while this one waited or was killed.
                    drop_partial(cache.incomplete(f.etag))
                    cache.link(commit, f.path, f.etag)
                    return False
                else:
                    job = FileJob(f, url, cache.incomplete(f.etag), ctx)
                await downloader.fetch(job)
                apply_umask_mode(job.temp)
                try:
                    os.replace(job.temp, target)
                except FileNotFoundError:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(job.temp, target)
                drop_partial(job.temp)  # its progress record, the data having just been renamed
                if local is not None:
                    local.write_metadata(f.path, commit, f.etag)
                else:
                    cache.link(commit, f.path, f.etag)
                    if forced is not None:
                        forced.add(f.etag)
                return True
        # Another process is fetching the same blob; wait for it rather than racing it.
        await anyio.sleep(LOCK_POLL_S)


def _drop_stale_partials(present: list[RemoteFile], cache: RepoCache, local: LocalDir | None) -> None:
    """Partial downloads of files already complete here (another client finished them after this
    one was killed) would stay forever: drop those no process is writing.

    The partial files on disk are listed once: a pull with nothing to do pays one walk of the
    folder that holds them (nearly always empty), not a stat per file of the repo.
    """
    where = local.meta_root / "download" if local is not None else cache.folder / "blobs"
    partials = {
        os.path.join(d, n) for d, _, names in os.walk(where) for n in names if n.endswith(".incomplete")
    }
    if not partials:
        return
    for f in present:
        temp = local.incomplete(f.path, f.etag) if local is not None else cache.incomplete(f.etag)
        if str(temp) in partials:
            with exclusive_lock(local.lock(f.path) if local is not None else cache.lock(f.etag)) as held:
                if held:
                    drop_partial(temp)


def _content_matches(path: Path, f: RemoteFile) -> bool:
    """Whether the regular file at `path` holds `f` (its size, then its digest): a local file with
    no usable metadata is adopted instead of downloaded again."""
    # The push's file hasher; imported here so that a pull does not load sqlite for nothing.
    from engine._hashing import hash_file

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size != f.size:
            return False
        d = hash_file(path, sha256=f.is_lfs, sha1=not f.is_lfs)
    except (OSError, ValueError):  # ValueError: it changed while being read
        return False
    return (d.sha256 if f.is_lfs else d.sha1) == f.etag


class _OnDisk(NamedTuple):
    """A pull answered from disk, and what the answer rests on (for the fallback's notice)."""

    result: PullResult
    basis: str


def _pull_offline(
    ref: RepoRef, opts: PullOptions, cache: RepoCache, local: LocalDir | None, *, listed_only: bool = False
) -> _OnDisk:
    """No network at all: succeed from what is on disk when the snapshot is complete.

    `listed_only` (the fallback when the Hub cannot be reached): in the cache, only a snapshot
    whose file list was recorded counts, as the official client's single-file downloads leave one
    that looks complete. A folder (-o) answers as it does offline, the notice saying on what.
    """
    label = f"{ref.repo_id}@{opts.revision}"
    recorded = local.snapshot_of(ref, opts.revision) if local is not None else None
    if recorded is not None:
        commit, files = recorded
    elif local is not None:
        # A folder from the official client or an older batuta: only its metadata tells.
        files = _local_files(local)
        commit = local.commit_of(files[0].path)
    else:
        commit, files = cache.cached_files(opts.revision, sizes=False)
        if listed_only and cache.read_tree(commit) is None:
            raise OfflineError(f"the cache has no file list recorded for {label}")
    try:
        selection = _select(files, ref, opts)
    except UsageError as exc:
        # What is on disk may be only part of the repo, so "not in the repo" would be a guess.
        raise OfflineError(f"offline mode (HF_HUB_OFFLINE): nothing cached for {label} fits: {exc}") from None
    root = local.root if local is not None else cache.snapshot(commit)
    if recorded is not None and local is not None:
        missing = [f.path for f in selection.selected if not _verified_here(local, f, commit)]
    else:
        missing = [f.path for f in selection.selected if not (root / f.path).exists()]
    if missing:
        raise OfflineError(
            f"offline mode (HF_HUB_OFFLINE): {len(missing)} files of {label} are not cached: {first_few(missing)}"
        )
    planned = [
        PlannedFile(f.path, (root / f.path).stat().st_size, f.is_lfs, "present") for f in selection.selected
    ]
    result = PullResult(
        ref.repo_id,
        ref.repo_type,
        opts.revision,
        commit,
        str(root),
        opts.dry_run,
        planned,
        _blocked(selection.blocked),
    )
    at = commit[:12] or "an unknown commit"
    if local is None:
        basis = f"the cached snapshot {at}"
    elif recorded is not None:
        basis = f"{root} at {at}, complete by the file list recorded there"
    else:
        basis = (
            f"the {len(planned)} files of {root} that its download metadata lists, at {at} (no file"
            " list is recorded there, so a file never downloaded into it would go unnoticed)"
        )
    return _OnDisk(result, basis)


def _verified_here(local: LocalDir, f: RemoteFile, commit: str) -> bool:
    """Whether the folder holds `f`: by its metadata, or (a copied folder: new mtimes) by hashing
    a file of the right size, which then gets fresh metadata."""
    if local.is_current(f.path, f.etag, f.size):
        return True
    if not _content_matches(local.target(f.path), f):
        return False
    local.write_metadata(f.path, commit, f.etag)
    return True


def _local_files(local: LocalDir) -> list[RemoteFile]:
    meta = local.meta_root / "download"
    out = []
    for dirpath, _dirs, names in os.walk(meta):
        for name in names:
            if name.endswith(".metadata"):
                rel = os.path.relpath(os.path.join(dirpath, name), meta).replace(os.sep, "/")
                out.append(RemoteFile(rel.removesuffix(".metadata"), 0, ""))
    if not out:
        raise OfflineError(f"offline mode (HF_HUB_OFFLINE): nothing was pulled into {local.root} yet")
    return out

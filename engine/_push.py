"""push: publish a local folder (or one file) to a Hub repo, sending only what changed.

The order of steps is the safety contract:

1. check the folder and select files (`--include`/`--exclude`; `.git/`, `.cache/huggingface/`
   and other version-control folders are never sent);
2. scan the selection for secrets; any finding stops the push before a single request;
3. read the remote head and tree (create the repo or branch when missing); a model card is
   generated only when README.md is missing both locally and in that tree, so a README written
   on the Hub is never replaced (nor removed by `--delete`, unless `--no-card` is given);
4. hash local files (hash cache first); the files whose oid differs from the remote's go on in
   batches of up to 256 (see PREUPLOAD_FLUSH_BYTES) while the other files are still being hashed:
5. preupload decides regular vs LFS; LFS objects go through the batch API, and objects the
   server already stores are not sent again, so an interrupted push resumes when re-run;
6. once every transfer has landed, commit in batches (see `plan_commits`), each batch one
   NDJSON POST with `parentCommit`, so a commit is never partial and a concurrent push is
   detected instead of overwritten. A failure before that point commits nothing.

Events: `PlanReady` is emitted twice before hashing starts: first for hashing (files and bytes
that the cache could not answer), then for uploading (files the cache cannot prove unchanged and
their bytes: an upper bound, and those found unchanged later get `FileFinished(skipped=True)`).
`FileHashed` reports hashing progress, `FileStarted`/`BytesMoved`/`FileFinished` the transfers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from engine import _pushlocal as pushlocal
from engine import _pushplan as pushplan
from engine import _pushremote as pushremote
from engine._api import validate_revision
from engine._backoff import backoff_delay
from engine._config import RetryPolicy
from engine._errors import (
    ConflictError,
    HubError,
    IntegrityError,
    first_error,
)
from engine._events import BytesMoved, FileFinished, Notice, PlanReady
from engine._hashing import (
    Digest,
    FileKey,
    HashCache,
    Hasher,
    HashJob,
    LocalFile,
    digest_bytes,
)
from engine._models import RemoteFile, RepoRef
from engine._pushgate import check_secrets
from engine._pushlocal import CARD
from engine._pushplan import (
    commit_message,
    digests_needed,
    guess_lfs,
    plan_commits,
    same_content,
)
from engine._pushtypes import PushedFile, PushOptions, PushResult
from engine._select import first_few, match_globs
from engine._upload import (
    PREUPLOAD_BATCH,
    SAMPLE_BYTES,
    AddFile,
    CommitResult,
    LfsObject,
    commit,
    commit_payload,
    lfs_batch,
    preupload,
    read_sample,
    upload_object,
)
from engine._wildmatch import gitignored

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream

    from engine._engine import Engine

_NEVER_DELETE = frozenset({".gitattributes"})
PARTS_IN_FLIGHT = 8
# A commit whose parent moved is retried on the new head this many times (when it touched none
# of the same files): enough for a handful of concurrent pushers, each retry one info + tree read.
REBASE_ATTEMPTS = 8
# Pushers that collided retry at once, spread by full-width jitter so that they do not collide
# again: a conflict costs the server nothing to answer, unlike an overload.
REBASE_WAIT = RetryPolicy(base_s=0.05, cap_s=1.0, jitter=1.0)
# A preupload batch waits for PREUPLOAD_BATCH changed files (one call per 256, as the official
# client makes: the calls count against the Hub's API quota), except that it leaves early once
# it holds this many bytes: large files should start their transfers while the rest is hashed.
# It also leaves PREUPLOAD_WAIT_S after its first file: with a cold hash cache over many large
# shards, a changed file must not wait for every other shard to be hashed before it uploads.
# Extra calls are then at most one per PREUPLOAD_FLUSH_BYTES sent or per PREUPLOAD_WAIT_S of
# hashing, and a folder of small files hashed within the wait takes ceil(files / 256) calls.
PREUPLOAD_FLUSH_BYTES = 1024 * 1024 * 1024
PREUPLOAD_WAIT_S = 2.0
PREUPLOAD_POLL_S = 0.02


async def push(engine: Engine, ref: RepoRef, folder: Path, options: PushOptions) -> PushResult:
    """Upload what changed in `folder` (or the one file it names) to `ref` at `options.revision`,
    under `options.path_in_repo`; see the module docstring.

    Raises UsageError (bad input), SecretsFoundError (credentials found: nothing sent),
    AuthRequiredError/ForbiddenError (no token / read-only token), ConflictError (the branch
    moved during the push), and the HubError/TransportError family once retries are used up.
    """
    validate_revision(options.revision)
    prefix = pushplan.repo_folder(options.path_in_repo)
    root, files = await anyio.to_thread.run_sync(pushlocal.local_files, folder, options)
    cache = await anyio.to_thread.run_sync(HashCache.under, engine.config.hf_home, engine.config.hub_cache)
    try:
        await anyio.to_thread.run_sync(check_secrets, root, files, cache, engine.config.scan_processes)
        single = root != folder
        as_file = single and not options.path_in_repo.endswith("/")
        pushplan.place_in_repo(files, prefix, as_file=as_file)
        try:
            return await _Run(engine, ref, options, files, cache, None if single else prefix).go(root)
        except ExceptionGroup as group:
            # Task groups wrap a failure (and whatever it cancelled) in an ExceptionGroup; the
            # caller maps error types to exit codes, so hand it the failure that started it.
            raise first_error(group) from None
    finally:
        cache.close()


def _refused(f: LocalFile, exc: BaseException) -> BaseException:
    """The storage refuses bytes that do not match the announced object: a file edited during the
    push fails there, with an answer that names neither it nor the cause. Network failures
    (TransportError) are never put down to an edit."""
    if not _changed(f):
        return exc
    err = IntegrityError(
        f"{f.rel} changed while it was being pushed; nothing was committed: push again", path=f.rel
    )
    err.__cause__ = exc
    return err


def _changed(f: LocalFile) -> bool:
    """Whether the file at `f` is no longer the one that was hashed (edited, replaced, removed)."""
    if f.path is None or f.key is None:
        return False
    try:
        return FileKey.of(f.path) != f.key
    except OSError:
        return True


class _Run:
    """The state of one push between its steps."""

    def __init__(
        self,
        engine: Engine,
        ref: RepoRef,
        opts: PushOptions,
        files: list[LocalFile],
        cache: HashCache,
        folder_in_repo: str | None = "",
    ) -> None:
        self.engine, self.ref, self.opts, self.files = engine, ref, opts, files
        # The repo folder this push mirrors ("" = the whole repo; None: one file, mirrors nothing).
        self.folder_in_repo = folder_in_repo
        self.sink = engine.on_event
        cfg = engine.config
        self.hasher = Hasher(cache, workers=cfg.hash_workers, on_event=self.sink)
        self.file_limiter = anyio.CapacityLimiter(max(1, cfg.files_in_flight))
        # Parts stream from disk (FileSlice), so a part in flight costs one read block, not its
        # 16 MiB: several in flight keep a high-latency link busy at little memory.
        self.part_limiter = anyio.CapacityLimiter(max(1, min(cfg.max_connections, PARTS_IN_FLIGHT)))
        self.remote: dict[str, RemoteFile] = {}
        self.deletes: list[str] = []
        self.notices: list[str] = []
        self.commits: list[CommitResult] = []
        self.head: str | None = None
        self.pr_url: str | None = None
        self.pr_revision: str | None = None
        self.created = self.card = self.card_kept = False
        self.uploaded = self.inline = self.reused = 0
        self.announced: set[str] = set()  # LFS oids already given to the batch API in this push
        self.committed: set[str] = set()  # paths in the parts of a split push already committed
        self.dropped: set[str] = set()  # files no longer to commit (a card another push beat)
        self.gitignore = pushlocal.gitignore_text(files)

    async def go(self, folder: Path) -> PushResult:
        """Push the files of `folder` (a card may be due when it is the whole repo)."""
        opts, ref = self.opts, self.ref

        async def read_remote() -> None:
            sdk = "gradio"
            if ref.repo_type == "space":
                sdk = await anyio.to_thread.run_sync(pushlocal.space_sdk, self.files)
            self.head, self.remote, self.created = await pushremote.remote_state(
                self.engine, ref, opts, self.notices, sdk
            )

        card: LocalFile | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_remote)
            if self.folder_in_repo == "" and self._card_wanted(folder):
                # Written meanwhile, as it needs no remote state; dropped below if the remote
                # revision has a README of its own.
                card = await self._write_card(folder)
        if card is not None:
            self._place_card(card)
        self.deletes = self._deletions()
        if opts.dry_run:
            await self._plan_only()
            return self._result()
        adds = await self._hash_and_upload()
        if adds or self.deletes:
            await self._commit(adds)
        return self._result()

    def _card_wanted(self, folder: Path) -> bool:
        """Whether the card rule applies: a model repo, cards on, and no README.md to send."""
        opts = self.opts
        return (
            opts.card
            and self.ref.repo_type == "model"
            and not (folder / CARD).exists()
            and match_globs(CARD, opts.include, opts.exclude)
        )

    async def _write_card(self, folder: Path) -> LocalFile:
        opts, ref = self.opts, self.ref
        from engine._modelcard import generate_model_card

        text = await anyio.to_thread.run_sync(
            lambda: generate_model_card(
                folder, repo_id=ref.repo_id, license=opts.license, files=[f.rel for f in self.files]
            )
        )
        data = text.encode()
        return LocalFile(
            CARD, None, len(data), data=data, digest=digest_bytes(data), sample=data[:SAMPLE_BYTES]
        )

    def _place_card(self, card: LocalFile) -> None:
        """Push the generated card only when the README is missing remotely as well as locally."""
        if CARD in self.remote:
            # A README on the Hub may be hand-written (or an earlier card the owner edited there):
            # replacing it from a folder that has none would lose it.
            self.card_kept = True
            return
        self.files.append(card)
        self.files.sort(key=lambda f: f.rel)
        self.card = True

    # -- what changed -----------------------------------------------------------------------

    def _jobs(self) -> list[HashJob]:
        return [
            HashJob(f.rel, f.path, f.key, *digests_needed(f, self.remote.get(f.rel)))
            for f in self.files
            if f.path is not None and f.key is not None
        ]

    def _classify(self, f: LocalFile) -> bool:
        """Mark `f` add/update/unchanged by its digest; True when it must be sent."""
        r = self.remote.get(f.rel)
        if r is not None and same_content(f, r):
            f.action, f.lfs = "unchanged", r.is_lfs
            return False
        f.action = "add" if r is None else "update"
        return True

    def _deletions(self) -> list[str]:
        if not self.opts.delete:
            return []
        local = {f.rel for f in self.files}
        if self.card_kept:
            local.add(CARD)  # the card rule keeps it: `--delete` with `--no-card` is the way to drop it
        inc, exc, prefix = self.opts.include, self.opts.exclude, self.folder_in_repo
        if prefix is None:
            return []
        # Only what lies in the folder pushed to, matched by the globs as the local paths are.
        inside = {p: rel for p in self.remote if (rel := pushplan.under(prefix, p)) is not None}
        return sorted(
            p
            for p, rel in inside.items()
            if p not in local and p not in _NEVER_DELETE and match_globs(rel, inc, exc)
        )

    async def _plan_only(self) -> None:
        """Dry run: hash, compare, and guess LFS the way the Hub would, sending nothing."""
        jobs = self._jobs()
        known = await self.hasher.cached(jobs)
        self._announce_hashing(jobs, known)
        digests = await self.hasher.digest_all(jobs, known=known)
        changed = []
        for f in self.files:
            f.digest = f.digest or digests.get(f.rel)
            if self._classify(f):
                changed.append(f)
        await self._read_samples(changed)
        for f in changed:
            f.lfs = guess_lfs(f, self.remote.get(f.rel))
            if gitignored(f.rel, self.gitignore):
                f.action = "ignored"  # what preupload would answer (the Hub's copy is not read)

    def _announce_hashing(self, jobs: Sequence[HashJob], known: dict[str, Digest]) -> None:
        todo = self.hasher.pending(jobs, known)
        self.sink(PlanReady(len(todo), sum(j.key.size for j in todo), len(jobs) - len(todo), 0))

    async def _read_samples(self, files: Sequence[LocalFile]) -> None:
        on_disk = [f for f in files if f.path is not None]
        if on_disk:
            samples = await anyio.to_thread.run_sync(lambda: [read_sample(_path(f)) for f in on_disk])
            for f, sample in zip(on_disk, samples, strict=True):
                f.sample = sample

    # -- the pipeline -----------------------------------------------------------------------

    async def _hash_and_upload(self) -> list[LocalFile]:
        """Hash every file and send each changed one as soon as its digest is known.

        Hashing runs ahead on the worker threads while the files already hashed go through
        preupload, the LFS batch API and their transfers, so the disk, the cores and the network
        work at the same time. Nothing is committed here: the commits (`_commit`) start only
        once every transfer has succeeded, so a failure at any point leaves no partial commit,
        and a re-run finds the objects that did land already stored.
        """
        # Largest first: their transfers are the longest, so they should start the earliest,
        # and the last files hashed (small ones) leave no long transfer behind them.
        jobs = sorted(self._jobs(), key=lambda j: -j.key.size)
        known = await self.hasher.cached(jobs)
        self._announce_hashing(jobs, known)
        # The upload plan comes before hashing ends; files the cache cannot vouch for count as
        # changed, so the total is an upper bound (files found unchanged get FileFinished(skipped)).
        maybe = [f for f in self.files if not self._maybe_same(f, known.get(f.rel))]
        self.sink(
            PlanReady(
                len(maybe) + len(self.deletes), sum(f.size for f in maybe), len(self.files) - len(maybe), 0
            )
        )
        by_rel = {f.rel: f for f in self.files}
        maybe_rels = {f.rel for f in maybe}
        send, receive = anyio.create_memory_object_stream[LocalFile](max_buffer_size=math.inf)

        def hashed(rel: str, digest: Digest) -> None:
            f = by_rel[rel]
            f.digest = digest
            if self._classify(f):
                send.send_nowait(f)
            elif rel in maybe_rels:
                self.sink(FileFinished(rel, skipped=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._upload_stage, receive)
            with send:
                for f in self.files:
                    if f.path is None and self._classify(f):  # generated: digest known already
                        send.send_nowait(f)
                await self.hasher.digest_all(jobs, on_digest=hashed, known=known)
        return [f for f in self.files if f.action in ("add", "update")]

    def _maybe_same(self, f: LocalFile, cached: Digest | None) -> bool:
        r = self.remote.get(f.rel)
        return r is not None and same_content(f, r, f.digest or cached)

    async def _upload_stage(self, receive: MemoryObjectReceiveStream[LocalFile]) -> None:
        """Take changed files as hashing yields them, in batches sized by PREUPLOAD_FLUSH_BYTES."""
        async with receive, anyio.create_task_group() as transfers:
            async for first in receive:
                batch, batch_bytes = [first], first.size
                # Waiting costs small files nothing: a regular file is only read at commit time.
                # Polled, not a cancelled receive(): a deadline firing just after a file was handed
                # over would lose that file.
                deadline = anyio.current_time() + PREUPLOAD_WAIT_S
                with contextlib.suppress(anyio.EndOfStream):
                    while len(batch) < PREUPLOAD_BATCH and batch_bytes < PREUPLOAD_FLUSH_BYTES:
                        try:
                            batch.append(receive.receive_nowait())
                        except anyio.WouldBlock:
                            if anyio.current_time() >= deadline:
                                break
                            await anyio.sleep(PREUPLOAD_POLL_S)
                            continue
                        batch_bytes += batch[-1].size
                await self._preupload(batch)
                await self._start_transfers(batch, transfers)

    async def _preupload(self, changed: list[LocalFile]) -> None:
        """Let the server pick regular or LFS per file; mark what it says to ignore."""
        opts = self.opts
        await self._read_samples([f for f in changed if not f.sample])
        files = [(f.rel, f.size, f.sample) for f in changed]
        answers = await preupload(
            self.engine.client,
            self.ref,
            opts.revision,
            files,
            create_pr=opts.create_pr,
            gitignore=self.gitignore,
        )
        for f in changed:
            answer = answers.get(f.rel)
            f.lfs = answer is not None and answer.mode == "lfs"
            if answer is not None and answer.should_ignore:
                f.action = "ignored"
        # Compared by git sha1 only (same size as a regular remote file), yet LFS now: needs sha256.
        missing = [
            f
            for f in changed
            if f.lfs and f.action != "ignored" and f.digest is not None and f.digest.sha256 is None
        ]
        extra = await self.hasher.digest_all(
            HashJob(f.rel, _path(f), f.key, True, False) for f in missing if f.key
        )
        for f in missing:
            f.digest = extra[f.rel].merged(f.digest) if f.digest else extra[f.rel]

    async def _start_transfers(self, batch: list[LocalFile], tg: TaskGroup) -> None:
        """Announce the batch's LFS objects; start a transfer for each one the server lacks."""
        wanted: dict[str, LocalFile] = {}
        for f in batch:
            oid = f.digest.sha256 if f.lfs and f.action != "ignored" and f.digest else None
            # Two files with the same content are one object: the first announcement sends it,
            # and the commit waits for every transfer, so the second file can rely on it.
            if oid is not None and oid not in self.announced:
                self.announced.add(oid)
                wanted[oid] = f
        if not wanted:
            return
        opts = self.opts
        objects = await lfs_batch(
            self.engine.client,
            self.ref,
            opts.revision,
            [(oid, f.size) for oid, f in wanted.items()],
            create_pr=opts.create_pr,
        )
        for obj in objects:
            if obj.upload is None:
                self.reused += 1  # already stored: an earlier, interrupted push sent it
            else:
                tg.start_soon(self._transfer, obj, wanted[obj.oid])

    async def _transfer(self, obj: LfsObject, f: LocalFile) -> None:
        async with self.file_limiter:
            try:
                sent = await upload_object(
                    self.engine.client,
                    obj,
                    _path(f),
                    rel=f.rel,
                    part_limiter=self.part_limiter,
                    on_event=self.sink,
                )
            except (HubError, OSError) as exc:
                raise _refused(f, exc) from exc
        self.uploaded += sent

    # -- commits ----------------------------------------------------------------------------

    async def _commit(self, adds: list[LocalFile]) -> None:
        """Commit `adds` and the deletions, each batch of `plan_commits` one NDJSON POST."""
        client, opts = self.engine.client, self.opts
        revision, create_pr = opts.revision, opts.create_pr
        batches = plan_commits(adds, self.deletes)
        message = commit_message(opts.message, len(adds), len(self.deletes))
        for index, (batch, dels) in enumerate(batches, start=1):
            summary = message if len(batches) == 1 else f"{message} (part {index}/{len(batches)})"
            # Read once: a retry on a new head sends the bytes that were checked, not a later edit.
            ops = await self._operations(batch)
            attempt = 0
            while True:
                ops = [op for op in ops if op.path not in self.dropped]
                if not ops and not dels:
                    break  # all it held was a card that another push's README replaced
                payload = commit_payload(summary, opts.description, ops, dels, parent=self.head)
                try:
                    result = await commit(client, self.ref, revision, payload, create_pr=create_pr)
                    break
                except ConflictError as exc:
                    attempt += 1
                    if exc.status != 412 or create_pr or opts.delete or attempt > REBASE_ATTEMPTS:
                        raise
                    await anyio.sleep(backoff_delay(attempt, REBASE_WAIT))
                    await self._rebase(revision)
            if not ops and not dels:
                continue
            self.committed.update(op.path for op in ops)
            self.committed.update(dels)
            self.inline += sum(op.size for op in ops if not op.is_lfs)
            for op in ops:
                if not op.is_lfs:
                    self.sink(BytesMoved(op.path, op.size))
            self.commits.append(result)
            self.head = result.oid
            if create_pr and result.pr_revision:
                # Later parts of a split push go onto the PR's own ref, not into new PRs.
                self.pr_url, self.pr_revision = result.pr_url, result.pr_revision
                revision, create_pr = result.pr_revision, False
        if len(batches) > 1:
            self.sink(
                Notice(f"pushed in {len(batches)} commits (at most {pushplan.MAX_COMMIT_OPS} files each)")
            )

    async def _rebase(self, revision: str) -> None:
        """Another commit landed on the branch since this push read it: go on from the new head
        if that commit touched none of the files this push has still to commit, else raise
        ConflictError naming them.

        Pushes of different files to one repo (a CI matrix, an eval job beside a training job)
        then all land, as with `hf upload`; a file that both changed is never overwritten blind.
        The parts of a split push already committed are this push's own: not a conflict.
        """
        head, tree = await pushremote.head_tree(self.engine, self.ref, revision)
        mine = ({f.rel for f in self.files} | set(self.deletes)) - self.committed
        # Preupload answered by the old head's rules (LFS or not, ignored or not): new rules
        # make those answers stale, so they count as a change to this push's files.
        mine |= {".gitattributes", pushlocal.GITIGNORE} - self.committed
        if self.card and CARD in tree and CARD not in self.remote:
            # Both pushes generated a card: the one that landed stands, as for any README there.
            mine.discard(CARD)
            self.dropped.add(CARD)
            self.files = [f for f in self.files if f.rel != CARD]
            self.card, self.card_kept = False, True
        moved = pushplan.moved_paths(mine, self.remote, tree)
        if moved:
            done = (
                f"; {len(self.commits)} earlier part(s) of this push were committed" if self.commits else ""
            )
            raise ConflictError(
                f"{first_few(moved, 5)} changed on {self.ref.repo_id}@{revision} while this push ran;"
                f" it was not overwritten{done}: pull, merge and push again",
                status=412,
            )
        self.head, self.remote = head, tree
        self.notices.append(f"{revision} moved during the push; committed on top of {(head or '')[:12]}")

    async def _operations(self, batch: list[LocalFile]) -> list[AddFile]:
        # Regular files are read in one thread hop for the whole batch, not one per file.
        inline = await anyio.to_thread.run_sync(
            lambda: {f.rel: _path(f).read_bytes() for f in batch if not f.lfs and f.data is None}
        )
        ops: list[AddFile] = []
        for f in batch:
            if f.lfs:
                assert f.digest is not None and f.digest.sha256 is not None
                ops.append(AddFile(f.rel, f.size, sha256=f.digest.sha256))
            else:
                data = f.data if f.data is not None else inline[f.rel]
                if f.path is not None and not pushplan.as_hashed(f, data):
                    # What was hashed was also what the secret scan read: these bytes were not.
                    raise IntegrityError(f"{f.rel} changed while it was being pushed: push again", path=f.rel)
                ops.append(AddFile(f.rel, len(data), data=data))
        return ops

    def _result(self) -> PushResult:
        rows = [PushedFile(f.rel, f.size, f.lfs, f.action) for f in self.files]
        rows += [PushedFile(p, self.remote[p].size, self.remote[p].is_lfs, "delete") for p in self.deletes]
        if self.card_kept and (kept := self.remote.get(CARD)) is not None:
            # (gone when someone deleted it on the Hub while this push ran)
            rows.append(PushedFile(CARD, kept.size, kept.is_lfs, "unchanged"))
        rows.sort(key=lambda r: r.path)
        return PushResult(
            repo=self.ref,
            revision=self.opts.revision,
            dry_run=self.opts.dry_run,
            files=tuple(rows),
            commits=tuple(self.commits),
            pr_url=self.pr_url,
            pr_revision=self.pr_revision,
            head=self.head,
            created_repo=self.created,
            card_generated=self.card,
            card_kept=self.card_kept,
            bytes_uploaded=self.uploaded,
            bytes_inline=self.inline,
            bytes_hashed=self.hasher.bytes_hashed,
            lfs_reused=self.reused,
            notices=tuple(self.notices),
        )


def _path(f: LocalFile) -> Path:
    assert f.path is not None, "generated content has no path"
    return f.path

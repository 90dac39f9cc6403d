"""push against a LocalHub over real sockets: round trips, differential runs, LFS, faults, safety."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from huggingface_hub import HfApi

from engine import (
    AuthRequiredError,
    ConflictError,
    Engine,
    EngineConfig,
    Event,
    FileFinished,
    FileHashed,
    ForbiddenError,
    HubServerError,
    IntegrityError,
    PlanReady,
    RepoRef,
    RetryPolicy,
    RetryScheduled,
    SecretsFoundError,
    UsageError,
    _pushgate,
    load_config,
)
from engine import _pushplan as pushplan
from engine._pushtypes import PushOptions, PushResult
from engine.testing.hub import LocalHub

KiB, MiB = 1024, 1024 * 1024
FAST = RetryPolicy(base_s=0.01, cap_s=0.05)
WRITER, READER = "hf_writer_token_for_push_tests_00000", "hf_reader_token_for_push_tests_00000"
REPO = "acme/pushed"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    # Small thresholds so that a 1 MiB file is LFS and a 600 KiB+ one goes multipart in 256 KiB parts.
    with LocalHub.in_thread(
        lfs_size_threshold_bytes=256 * KiB,
        multipart_threshold_bytes=600 * KiB,
        multipart_chunk_bytes=256 * KiB,
    ) as h:
        h.add_token(WRITER, user="acme", role="write")
        h.add_token(READER, user="acme", role="read")
        yield h


def cfg(hub: LocalHub, token: str | None = WRITER, **kw: Any) -> EngineConfig:
    return load_config(os.environ, endpoint=hub.url, token=token, retry=FAST, **kw)


async def do_push(
    config: EngineConfig,
    folder: Path,
    repo: str = REPO,
    *,
    repo_type: str = "model",
    events: list[Event] | None = None,
    **opts: Any,
) -> PushResult:
    sink = events.append if events is not None else (lambda e: None)
    async with Engine(config, on_event=sink) as engine:
        return await engine.push(RepoRef.parse(repo_type, repo), folder, PushOptions(**opts))


def age(folder: Path, seconds: float = 60.0) -> None:
    """Backdate every file, so the hash cache may trust it (fresh files are re-hashed on purpose)."""
    past = time.time() - seconds
    for p in folder.rglob("*"):
        if p.is_file():
            os.utime(p, (past, past))


def model_folder(root: Path) -> Path:
    folder = root / "model"
    files: dict[str, bytes] = {
        "config.json": json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"}).encode(),
        "tokenizer.json": json.dumps({"added_tokens": [{"content": "[PAD]"}], "pad_token": "[PAD]"}).encode(),
        "special_tokens_map.json": b'{"pad_token": "[PAD]", "unk_token": "[UNK]"}',
        "empty.txt": b"",
        "model.safetensors": os.urandom(300 * KiB + 7),  # binary sample: LFS, basic PUT
        "weights/big.safetensors": os.urandom(MiB + 123),  # LFS, multipart (5 parts)
        "notes/readme.txt": b"plain text\n" * 50,
    }
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    age(folder)
    return folder


def many_files(root: Path, n: int) -> Path:
    folder = root / "many"
    folder.mkdir()
    for i in range(n):
        (folder / f"f{i:02d}.txt").write_text(f"file {i}\n")
    return folder


def tree_bytes(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def official_snapshot(hub: LocalHub, repo: str, dest: Path, revision: str = "main") -> dict[str, bytes]:
    """Download with huggingface_hub in a fresh process (its settings are read at import time)."""
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_CACHE": str(dest / "cache"),
        "HF_TOKEN": READER,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    code = (
        "import sys\nfrom huggingface_hub import snapshot_download\n"
        "print(snapshot_download(sys.argv[1], revision=sys.argv[2], local_dir=sys.argv[3]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, repo, revision, str(dest / "out")],
        env=env,
        check=True,
        capture_output=True,
    )
    got = tree_bytes(dest / "out")
    return {k: v for k, v in got.items() if not k.startswith(".cache/")}


# ---- round trips ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_push_round_trips_through_the_official_client_and_batuta_pull(
    hub: LocalHub, tmp_path: Path
) -> None:
    folder = model_folder(tmp_path)
    local = tree_bytes(folder)
    result = await do_push(cfg(hub), folder)
    assert result.created_repo and len(result.commits) == 1 and result.card_generated
    assert {f.path for f in result.by_action("add")} == set(local) | {"README.md"}
    lfs = {f.path for f in result.files if f.lfs}
    assert lfs == {"model.safetensors", "weights/big.safetensors"}
    assert result.bytes_uploaded == len(local["model.safetensors"]) + len(local["weights/big.safetensors"])
    assert not (folder / "README.md").exists()  # the local folder stays untouched

    remote = official_snapshot(hub, REPO, tmp_path / "official")
    readme = remote.pop("README.md")
    remote.pop(".gitattributes", None)
    assert remote == local
    assert b"Built with the PAIML stack (batuta)" in readme

    from engine._pull import PullOptions

    async with Engine(cfg(hub)) as engine:
        await engine.pull(RepoRef.parse("model", REPO), PullOptions(output=tmp_path / "pulled"))
    pulled = tree_bytes(tmp_path / "pulled")
    assert {k: v for k, v in pulled.items() if k in local} == local
    assert hub.stats().blob_requests_with_auth == 0  # the token never reached the blob host


@pytest.mark.anyio
async def test_multipart_upload_sends_parts_in_parallel_and_verifies(hub: LocalHub, tmp_path: Path) -> None:
    folder = tmp_path / "mp"
    folder.mkdir()
    blob = os.urandom(5 * 256 * KiB + 1)  # 6 parts, the last one a single byte
    (folder / "shard.bin").write_bytes(blob)
    await do_push(cfg(hub), folder, card=False)
    stats = hub.stats()
    assert stats.count("upload", "PUT") == 6 and stats.count("upload", "POST") == 1
    assert stats.count("lfs-verify") == 1
    assert (hub.repo_dir(REPO) / "shard.bin").read_bytes() == blob


# ---- differential --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_unchanged_repush_makes_no_commit_and_hashes_nothing(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    first = await do_push(cfg(hub), folder)
    head = hub.head(REPO)
    assert first.bytes_hashed > 0
    hub.reset()
    events: list[Event] = []
    again = await do_push(cfg(hub), folder, events=events)
    assert again.up_to_date and again.commits == () and again.head == head == hub.head(REPO)
    assert again.bytes_hashed == 0 and all(e.n == 0 for e in events if isinstance(e, FileHashed))
    assert hub.stats().writes == 0


@pytest.mark.anyio
async def test_one_changed_and_one_added_file_are_the_only_ones_sent(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    await do_push(cfg(hub), folder)
    (folder / "notes" / "readme.txt").write_text("edited\n")
    (folder / "added.txt").write_text("new\n")
    hub.reset()
    result = await do_push(cfg(hub), folder, message="edit notes")
    assert {f.path: f.action for f in result.files if f.action != "unchanged"} == {
        "added.txt": "add",
        "notes/readme.txt": "update",
    }
    assert len(result.commits) == 1 and hub.stats().upload_bytes_received == 0
    repo = hub.repo_dir(REPO)
    assert (repo / "notes" / "readme.txt").read_text() == "edited\n"
    assert (repo / "added.txt").read_text() == "new\n"


@pytest.mark.anyio
async def test_a_changed_lfs_file_is_re_uploaded(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    await do_push(cfg(hub), folder)
    new = os.urandom(300 * KiB + 7)  # same size: only the sha256 can tell
    (folder / "model.safetensors").write_bytes(new)
    hub.reset()
    result = await do_push(cfg(hub), folder)
    assert [f.path for f in result.files if f.action == "update"] == ["model.safetensors"]
    assert result.bytes_uploaded == len(new)
    assert (hub.repo_dir(REPO) / "model.safetensors").read_bytes() == new


@pytest.mark.anyio
async def test_deleted_file_is_kept_by_default_and_removed_with_delete(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    await do_push(cfg(hub), folder)
    (folder / "notes" / "readme.txt").unlink()
    kept = await do_push(cfg(hub), folder)
    assert kept.up_to_date and (hub.repo_dir(REPO) / "notes" / "readme.txt").exists()
    gone = await do_push(cfg(hub), folder, delete=True)
    assert [f.path for f in gone.by_action("delete")] == ["notes/readme.txt"]
    assert len(gone.commits) == 1 and gone.commits[0].oid.startswith(gone.commits[0].oid[:6])
    assert not (hub.repo_dir(REPO) / "notes" / "readme.txt").exists()
    assert (hub.repo_dir(REPO) / ".gitattributes").exists()  # never deleted


@pytest.mark.anyio
async def test_large_folders_are_split_into_commits_and_resume(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pushplan, "MAX_COMMIT_OPS", 4)
    folder = many_files(tmp_path, 10)
    age(folder)
    result = await do_push(cfg(hub), folder, card=False)
    assert len(result.commits) == 3 and hub.head(REPO) == result.head
    assert (await do_push(cfg(hub), folder, card=False)).up_to_date


# ---- model card ----------------------------------------------------------------------------------


def front_matter(text: str) -> dict[str, Any]:
    assert text.startswith("---\n")
    data = yaml.safe_load(text.split("---\n", 2)[1])
    assert isinstance(data, dict)
    return data


@pytest.mark.anyio
async def test_model_card_is_generated_with_license_tags_and_metrics(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    (folder / "eval_results.json").write_text('{"eval_accuracy": 0.875}')
    await do_push(cfg(hub), folder, license="apache-2.0")
    card = (hub.repo_dir(REPO) / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0"
    assert "safetensors" in meta["tags"]
    assert "eval_accuracy" in card and "0.875" in card
    assert "Built with the PAIML stack (batuta)" in card


@pytest.mark.anyio
async def test_no_card_and_existing_readme_and_datasets_get_no_generated_card(
    hub: LocalHub, tmp_path: Path
) -> None:
    folder = model_folder(tmp_path)
    result = await do_push(cfg(hub), folder, card=False)
    assert not result.card_generated and not (hub.repo_dir(REPO) / "README.md").exists()
    (folder / "README.md").write_text("# mine\n")
    result = await do_push(cfg(hub), folder)
    assert not result.card_generated and (hub.repo_dir(REPO) / "README.md").read_text() == "# mine\n"
    ds = await do_push(cfg(hub), folder, "acme/ds", repo_type="dataset")
    assert not ds.card_generated


# ---- safety --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_secrets_stop_the_push_before_any_request(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    secret = "hf_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"
    (folder / "train.py").write_text(f"import os\nTOKEN = '{secret}'\n")
    (folder / ".env").write_text("PASSWORD=hunter2-but-longer\n")
    with pytest.raises(SecretsFoundError) as info:
        await do_push(cfg(hub), folder)
    assert hub.stats().total == 0  # not even the repo was created
    assert any(line.startswith("train.py:2:") for line in info.value.findings)
    assert any(line.startswith(".env") for line in info.value.findings)
    assert secret not in str(info.value) and all(secret not in line for line in info.value.findings)
    result = await do_push(cfg(hub), folder, exclude=("train.py", ".env"))
    assert {"train.py", ".env"}.isdisjoint(f.path for f in result.files)


@pytest.mark.anyio
async def test_vcs_and_hf_cache_folders_are_never_pushed(hub: LocalHub, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "config").write_text("[core]\n")
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "x.metadata").write_text("1\n")
    (folder / "a.txt").write_text("a")
    result = await do_push(cfg(hub), folder, card=False)
    assert [f.path for f in result.files] == ["a.txt"]


# ---- auth and faults -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_write_without_token_is_401_and_read_only_token_is_403(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    with pytest.raises(AuthRequiredError):
        await do_push(cfg(hub, token=None), folder)
    with pytest.raises(ForbiddenError):
        await do_push(cfg(hub, token=READER), folder)
    assert hub.head(REPO) is None


@pytest.mark.anyio
@pytest.mark.parametrize("status", [429, 503])
async def test_upload_rides_out_429_and_503(hub: LocalHub, tmp_path: Path, status: int) -> None:
    folder = model_folder(tmp_path)
    hub.fail(status=status, times=2, path_contains="/upload/")
    hub.fail(status=status, times=1, path_contains="/commit/")
    events: list[Event] = []
    await do_push(cfg(hub), folder, events=events)
    retries = [e for e in events if isinstance(e, RetryScheduled)]
    assert len(retries) == 3 and {e.reason for e in retries} == {str(status)}
    assert (hub.repo_dir(REPO) / "weights" / "big.safetensors").read_bytes() == (
        folder / "weights" / "big.safetensors"
    ).read_bytes()


@pytest.mark.anyio
async def test_interrupted_push_resumes_without_resending_lfs_bytes(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    hub.fail(status=500, times=100, path_contains="commit")
    with pytest.raises(HubServerError):
        await do_push(cfg(hub), folder)
    assert hub.stats().upload_bytes_received > 0
    head = hub.head(REPO)
    assert head is not None and not (hub.repo_dir(REPO) / "config.json").exists()  # no partial commit
    hub.reset()
    result = await do_push(cfg(hub), folder)
    assert hub.stats().upload_bytes_received == 0 and hub.stats().count("upload") == 0
    assert result.lfs_reused == 2 and result.bytes_uploaded == 0 and len(result.commits) == 1
    assert (
        tree_bytes(hub.repo_dir(REPO))["weights/big.safetensors"]
        == (folder / "weights" / "big.safetensors").read_bytes()
    )


# ---- options ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_dry_run_reads_but_never_writes(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    plan = await do_push(cfg(hub), folder, dry_run=True)
    assert plan.dry_run and hub.head(REPO) is None and hub.stats().writes == 0
    assert {f.path for f in plan.by_action("add")} >= {"config.json", "README.md", "weights/big.safetensors"}
    assert {f.path for f in plan.files if f.lfs} == {"model.safetensors", "weights/big.safetensors"}
    await do_push(cfg(hub), folder)
    (folder / "notes" / "readme.txt").write_text("changed")
    (folder / "empty.txt").unlink()
    hub.reset()
    plan = await do_push(cfg(hub), folder, dry_run=True, delete=True)
    assert {f.path: f.action for f in plan.files if f.action != "unchanged"} == {
        "notes/readme.txt": "update",
        "empty.txt": "delete",
    }
    assert hub.stats().writes == 0


@pytest.mark.anyio
async def test_include_exclude_revision_and_create_pr(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    only = await do_push(cfg(hub), folder, include=("*.json",), card=False)
    assert {f.path for f in only.files} == {"config.json", "tokenizer.json", "special_tokens_map.json"}
    dev = await do_push(cfg(hub), folder, revision="dev", exclude=("weights/",), card=False)
    assert hub.head(REPO, revision="dev") == dev.head and "weights/big.safetensors" not in {
        f.path for f in dev.files
    }
    (folder / "config.json").write_text('{"pr": true}')
    pr = await do_push(cfg(hub), folder, create_pr=True, include=("config.json",), card=False)
    assert pr.pr_url is not None and "/discussions/" in pr.pr_url
    assert (hub.repo_dir(REPO) / "config.json").read_text() != '{"pr": true}'  # main untouched


@pytest.mark.anyio
async def test_bad_input_is_refused_before_any_request(hub: LocalHub, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    os.mkfifo(tmp_path / "fifo")  # neither a folder nor a file (a file is pushed on its own)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ok.txt").write_text("ok")
    (broken / "dangling.bin").symlink_to(tmp_path / "nowhere")
    cases = {
        tmp_path / "missing": "does not exist",
        tmp_path / "fifo": "is not a folder",
        tmp_path / "empty": "nothing to push",
        broken: "cannot read 'dangling.bin'",
    }
    for folder, message in cases.items():
        with pytest.raises(UsageError, match=message):
            await do_push(cfg(hub), folder)
    with pytest.raises(UsageError, match="invalid repo id"):
        await do_push(cfg(hub), broken, "not a repo id")
    assert hub.stats().total == 0


@pytest.mark.anyio
@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
async def test_unreadable_file_is_refused(hub: LocalHub, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "secret.bin").write_bytes(b"x")
    (folder / "secret.bin").chmod(0)
    with pytest.raises(UsageError, match="cannot read 'secret.bin'"):
        await do_push(cfg(hub), folder)


@pytest.mark.anyio
async def test_scan_verdicts_are_cached_but_an_edited_file_is_scanned_again(
    hub: LocalHub, tmp_path: Path
) -> None:
    from engine._hashing import FileKey, HashCache
    from engine._pushgate import scanner_id

    folder = model_folder(tmp_path)
    await do_push(cfg(hub), folder)
    cache = HashCache.under(cfg(hub).hf_home)
    key = FileKey.of(folder / "notes" / "readme.txt")
    assert key in cache.clean_scans([key], scanner_id())
    cache.close()
    (folder / "notes" / "readme.txt").write_text(
        "github token ghp_" + "Zq8Xw2Lm4Np6Rt8Vb0Cd2Fg4Hj6Kl8Mn0Pq2\n"
    )
    with pytest.raises(SecretsFoundError, match="notes/readme.txt:1"):
        await do_push(cfg(hub), folder)


# ---- pipeline: hashing overlaps uploads, commits wait for all of them -----------------------------


@pytest.mark.anyio
async def test_a_failed_transfer_leaves_no_commit_and_the_rerun_sends_no_lfs_byte_twice(
    hub: LocalHub, tmp_path: Path
) -> None:
    folder = model_folder(tmp_path)
    big = (folder / "weights" / "big.safetensors").read_bytes()
    small = (folder / "model.safetensors").read_bytes()
    hub.fail(status=500, times=1000, path_contains=f"/upload/{hashlib.sha256(big).hexdigest()}")
    with pytest.raises(HubServerError):
        await do_push(cfg(hub), folder)
    first = hub.stats()
    # Other files were hashed and uploaded meanwhile, yet nothing was committed.
    assert first.count("commit") == 0 and not (hub.repo_dir(REPO) / "config.json").exists()
    hub.reset()
    result = await do_push(cfg(hub), folder)
    assert len(result.commits) == 1 and result.lfs_reused + hub.stats().count("lfs-verify") == 2
    # What landed in the failed run (the small object) is not sent again.
    assert first.upload_bytes_received + hub.stats().upload_bytes_received == len(big) + len(small)
    assert tree_bytes(hub.repo_dir(REPO))["weights/big.safetensors"] == big


@pytest.mark.anyio
async def test_identical_lfs_files_are_uploaded_once_and_both_committed(
    hub: LocalHub, tmp_path: Path
) -> None:
    folder = tmp_path / "twins"
    blob = os.urandom(MiB + 5)
    for rel in ("a/shard.safetensors", "b/shard.safetensors", "c/shard.safetensors"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(blob)
    age(folder)
    result = await do_push(cfg(hub), folder, card=False)
    assert result.bytes_uploaded == len(blob) and hub.stats().upload_bytes_received == len(blob)
    assert {f.path for f in result.by_action("add")} == {
        "a/shard.safetensors",
        "b/shard.safetensors",
        "c/shard.safetensors",
    }
    assert all(tree_bytes(hub.repo_dir(REPO))[f"{d}/shard.safetensors"] == blob for d in "abc")


@pytest.mark.anyio
async def test_upload_plan_is_announced_before_hashing_ends(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    events: list[Event] = []
    await do_push(cfg(hub), folder, events=events)
    kinds = [type(e).__name__ for e in events]
    plans = [i for i, k in enumerate(kinds) if k == "PlanReady"]
    assert len(plans) == 2 and plans[1] < max(i for i, k in enumerate(kinds) if k == "FileHashed")
    # A re-push after touching a file (same content): it counts as maybe-changed, then skipped.
    (folder / "config.json").touch()
    events.clear()
    again = await do_push(cfg(hub), folder, events=events)
    assert again.up_to_date
    upload_plan = [e for e in events if isinstance(e, PlanReady)][1]
    assert upload_plan.files == 1 and [e.path for e in events if isinstance(e, FileFinished)] == [
        "config.json"
    ]


def test_scanner_id_is_the_fingerprint_of_the_scanner_source() -> None:
    import xxhash

    from engine import _secretarchives, _secretfiles, _secrets

    sources = b"".join(Path(str(m.__file__)).read_bytes() for m in (_secrets, _secretfiles, _secretarchives))
    assert _pushgate.scanner_id() == xxhash.xxh3_64_hexdigest(sources)


@pytest.mark.anyio
async def test_a_gitignore_pushed_for_the_first_time_applies_to_its_own_commit(
    hub: LocalHub, tmp_path: Path
) -> None:
    # Audit repro: W&B runs, logs and notes listed in a new .gitignore were published with it.
    folder = tmp_path / "run"
    files = {
        ".gitignore": b"wandb/\n*.log\nnotes.txt\n!keep.log\n",
        "config.json": b"{}",
        "wandb/run-1/files/output.bin": os.urandom(3000),
        "logs/train.log": b"loss 0.1\n",
        "keep.log": b"kept on purpose\n",
        "notes.txt": b"internal\n",
    }
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    ignored = ["logs/train.log", "notes.txt", "wandb/run-1/files/output.bin"]
    plan = await do_push(cfg(hub), folder, dry_run=True, card=False)
    assert sorted(f.path for f in plan.by_action("ignored")) == ignored
    result = await do_push(cfg(hub), folder, card=False)
    assert sorted(f.path for f in result.by_action("ignored")) == ignored
    pushed = set(tree_bytes(hub.repo_dir(REPO)))
    assert {".gitignore", "config.json", "keep.log"} <= pushed and not pushed & set(ignored)


CONFIG_V2 = b'{"model_type": "bert", "v": 2}'


async def _push_while_another_commits(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, data: bytes
) -> PushResult:
    """Push a changed config.json; just before its commit, another client commits `path`."""
    folder = model_folder(tmp_path)
    await do_push(cfg(hub), folder, card=False)
    (folder / "config.json").write_bytes(CONFIG_V2)
    _before_commit(
        monkeypatch,
        1,
        lambda: _other(hub).upload_file(
            path_or_fileobj=data, path_in_repo=path, repo_id=REPO, commit_message="meanwhile"
        ),
    )
    return await do_push(cfg(hub), folder, card=False)


@pytest.mark.anyio
async def test_a_push_whose_branch_moved_commits_on_top_when_the_files_differ(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parity repro: of 5 concurrent pushes of different files to one repo, 2 failed with exit 14.
    result = await _push_while_another_commits(
        hub, tmp_path, monkeypatch, "eval/results.json", b'{"f1": 0.9}'
    )
    files = tree_bytes(hub.repo_dir(REPO))
    assert files["config.json"] == CONFIG_V2
    assert files["eval/results.json"] == b'{"f1": 0.9}'  # the other commit is kept
    assert any("moved during the push" in n for n in result.notices)


@pytest.mark.anyio
async def test_a_push_whose_file_changed_meanwhile_fails_without_overwriting_it(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        ConflictError, match=r"notes/readme\.txt changed on acme/pushed@main while this push ran"
    ):
        await _push_while_another_commits(
            hub, tmp_path, monkeypatch, "notes/readme.txt", b"edited on the Hub\n"
        )
    files = tree_bytes(hub.repo_dir(REPO))
    assert files["notes/readme.txt"] == b"edited on the Hub\n" and files["config.json"] != CONFIG_V2


@pytest.mark.anyio
async def test_a_dry_run_with_a_refused_token_fails_instead_of_planning_as_anonymous(
    hub: LocalHub, tmp_path: Path
) -> None:
    # Audit repro: exit 0 and "not visible without a token: every file is shown as new".
    folder = model_folder(tmp_path)
    await do_push(cfg(hub), folder, card=False)
    with pytest.raises(AuthRequiredError, match="the token was refused"):
        await do_push(cfg(hub, token="hf_" + "z" * 34), folder, dry_run=True, card=False)
    anonymous = await do_push(cfg(hub, token=None), folder, dry_run=True, card=False)
    assert anonymous.up_to_date  # the repo is public: no token still plans against it


@pytest.mark.anyio
@pytest.mark.parametrize(
    "files,sdk",
    [
        ({"app.py": "import gradio as gr\n"}, "gradio"),
        ({"app.py": '"""demo"""\nfrom streamlit import title\n'}, "streamlit"),
        ({"Dockerfile": "FROM python:3.11\n", "main.py": "print()\n"}, "docker"),
        ({"index.html": "<html></html>\n"}, "static"),
        ({"README.md": "---\ntitle: x\nsdk: docker\n---\n", "app.py": "import gradio\n"}, "docker"),
        ({"notes.txt": "x\n"}, "gradio"),  # what hf upload creates
    ],
)
async def test_a_new_space_gets_the_sdk_its_files_need(
    hub: LocalHub, tmp_path: Path, files: dict[str, str], sdk: str
) -> None:
    # Parity repro: every new Space was created "static", so a Gradio app pushed without a README
    # `sdk:` line never ran.
    folder = tmp_path / "space"
    folder.mkdir()
    for rel, text in files.items():
        (folder / rel).write_text(text)
    await do_push(cfg(hub), folder, "acme/demo", repo_type="space")
    assert HfApi(endpoint=hub.url, token=WRITER).space_info("acme/demo").sdk == sdk


def _before_commit(monkeypatch: pytest.MonkeyPatch, call: int, act: Callable[[], object]) -> None:
    """Run `act` (another client's change) just before this push's commit number `call` is sent."""
    from engine import _push as push_mod

    real, calls = push_mod.commit, [0]  # type: ignore[attr-defined]

    async def commit(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == call:
            act()
        return await real(*args, **kwargs)

    monkeypatch.setattr(push_mod, "commit", commit)


def _other(hub: LocalHub) -> HfApi:
    return HfApi(endpoint=hub.url, token=WRITER)


@pytest.mark.anyio
async def test_a_split_push_whose_branch_moves_between_parts_goes_on(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review repro: part 1's own files were taken for someone else's change (exit 14).
    monkeypatch.setattr(pushplan, "MAX_COMMIT_OPS", 2)
    folder = many_files(tmp_path, 5)
    _before_commit(
        monkeypatch,
        2,
        lambda: _other(hub).upload_file(path_or_fileobj=b"x", path_in_repo="other.txt", repo_id=REPO),
    )
    result = await do_push(cfg(hub), folder, card=False)
    assert len(result.commits) == 3
    files = tree_bytes(hub.repo_dir(REPO))
    assert files["other.txt"] == b"x" and all(
        files[f"f{i:02d}.txt"] == f"file {i}\n".encode() for i in range(5)
    )


@pytest.mark.anyio
async def test_a_readme_added_meanwhile_is_never_replaced_by_the_generated_card(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review repro: in a split push the card, dropped from the current part only, came back in a
    # later one and overwrote the README another writer had just added.
    monkeypatch.setattr(pushplan, "MAX_COMMIT_OPS", 2)
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("A.json", "B.json", "C.json"):  # sorted before README.md: the card is in part 2
        (folder / name).write_text("{}")
    (folder / "config.json").write_text('{"model_type": "bert"}')
    await do_push(cfg(hub), folder, card=False)  # the repo exists, without a README
    for name in ("A.json", "B.json", "C.json", "config.json"):
        (folder / name).write_text('{"v": 2}')  # 4 changes and the card: 3 parts
    theirs = b"# written by hand\n"
    _before_commit(
        monkeypatch,
        1,
        lambda: _other(hub).upload_file(path_or_fileobj=theirs, path_in_repo="README.md", repo_id=REPO),
    )
    result = await do_push(cfg(hub), folder)
    assert tree_bytes(hub.repo_dir(REPO))["README.md"] == theirs
    assert result.card_kept and not result.card_generated


@pytest.mark.anyio
async def test_a_card_that_was_the_only_change_makes_no_empty_commit_once_dropped(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = model_folder(tmp_path)
    await do_push(cfg(hub), folder, card=False)
    theirs = b"# by hand\n"
    _before_commit(
        monkeypatch,
        1,
        lambda: _other(hub).upload_file(path_or_fileobj=theirs, path_in_repo="README.md", repo_id=REPO),
    )
    result = await do_push(cfg(hub), folder)  # only change: the generated card
    assert result.commits == () and tree_bytes(hub.repo_dir(REPO))["README.md"] == theirs


@pytest.mark.anyio
async def test_a_readme_deleted_meanwhile_does_not_break_the_result(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review repro: the commit landed, then the summary raised KeyError: 'README.md' (exit 1).
    folder = model_folder(tmp_path)
    await do_push(cfg(hub), folder, card=False)
    hub.add_repo(REPO, {"README.md": "# kept\n"})
    (folder / "config.json").write_text('{"model_type": "bert", "v": 2}')
    _before_commit(monkeypatch, 1, lambda: _other(hub).delete_file("README.md", repo_id=REPO))
    result = await do_push(cfg(hub), folder)
    assert len(result.commits) == 1 and "README.md" not in tree_bytes(hub.repo_dir(REPO))


@pytest.mark.anyio
async def test_a_regular_file_edited_after_hashing_is_not_committed(hub: LocalHub, tmp_path: Path) -> None:
    # Review suspicion: inline files were read at commit time, so an edit after the scan and
    # the hashing (a token pasted in) would have gone out unscanned.
    folder = model_folder(tmp_path)
    edited: list[str] = []

    def sink(event: Event) -> None:
        if isinstance(event, FileHashed) and event.path == "notes/readme.txt" and not edited:
            edited.append(event.path)
            (folder / "notes" / "readme.txt").write_text("pasted later\n")

    with pytest.raises(IntegrityError, match=r"notes/readme\.txt changed while it was being pushed"):
        async with Engine(cfg(hub), on_event=sink) as engine:
            await engine.push(RepoRef.parse("model", REPO), folder, PushOptions(card=False))
    assert edited and "notes/readme.txt" not in tree_bytes(hub.repo_dir(REPO))


@pytest.mark.anyio
async def test_a_gitattributes_changed_meanwhile_is_a_conflict(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Preupload's LFS answers came from the old rules: committing on top would store files as
    # the new rules do not say.
    with pytest.raises(ConflictError, match=r"^\.gitattributes, .* changed on acme/pushed@main"):
        await _push_while_another_commits(
            hub, tmp_path, monkeypatch, ".gitattributes", b"*.json filter=lfs diff=lfs merge=lfs -text\n"
        )

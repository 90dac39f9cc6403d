"""pull against a LocalHub over real sockets: layout, ranges, verification, faults, resume, safety."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import (
    ConnectError,
    Engine,
    EngineConfig,
    Event,
    GatedRepoError,
    NotFoundError,
    OfflineError,
    RepoRef,
    RetryPolicy,
    RetryScheduled,
    UsageError,
    load_config,
)
from engine._pull import PullOptions, PullResult
from engine.testing.hub import LocalHub
from tests.engine.test_hub import refusing_endpoint

KiB = 1024
FAST = RetryPolicy(base_s=0.01, cap_s=0.05)
TOKEN = "hf_reader_token_for_tests_0000000000"


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread() as h:
        h.add_token(TOKEN, user="reader", role="read", gated=True)
        yield h


def cfg(hub: LocalHub, **kw: Any) -> EngineConfig:
    base: dict[str, Any] = {
        "endpoint": hub.url,
        "retry": FAST,
        "chunk_bytes": 64 * KiB,
        "stall_timeout_s": 5.0,
    }
    base.update(kw)
    return load_config(os.environ, **base)


def pulled(config: EngineConfig, repo: str, result: PullResult, path: str = "model.safetensors") -> Path:
    """Where `path` of `repo` sits in the HF cache after `result`."""
    return config.hub_cache / f"models--{repo.replace('/', '--')}" / "snapshots" / result.commit / path


async def do_pull(
    config: EngineConfig, repo: str, events: list[Event] | None = None, **opts: Any
) -> PullResult:
    async with Engine(config, on_event=(events.append if events is not None else lambda e: None)) as engine:
        return await engine.pull(RepoRef.parse(opts.pop("repo_type", "model"), repo), PullOptions(**opts))


def sample_files() -> dict[str, bytes]:
    return {
        "config.json": b'{"model_type": "bert"}',
        "empty.txt": b"",
        "model.safetensors": os.urandom(300 * KiB + 17),  # LFS, several ranges
        "tokenizer/vocab.txt": b"hello\nworld\n" * 100,
        "big_regular.txt": b"x" * (130 * KiB),  # regular (not LFS) yet ranged
    }


def snapshot_bytes(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


@pytest.mark.anyio
async def test_pull_into_cache_is_byte_identical_with_official_layout(
    hub: LocalHub, isolated_home: Path
) -> None:
    files = sample_files()
    commit = hub.add_repo("acme/tiny", files)
    config = cfg(hub)
    result = await do_pull(config, "acme/tiny")
    assert result.commit == commit and not result.failed
    snap = config.hub_cache / "models--acme--tiny" / "snapshots" / commit
    assert snapshot_bytes(snap) == files
    refs = (config.hub_cache / "models--acme--tiny" / "refs" / "main").read_bytes()
    assert refs == commit.encode()  # no trailing newline
    link = snap / "model.safetensors"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert os.readlink(link) == "../../blobs/" + hashlib.sha256(files["model.safetensors"]).hexdigest()
    blob_names = {p.name for p in (config.hub_cache / "models--acme--tiny" / "blobs").iterdir()}
    assert not any(n.endswith((".incomplete", ".progress")) for n in blob_names)
    assert hub.stats().blob_requests_with_auth == 0


@pytest.mark.anyio
async def test_second_pull_transfers_nothing(hub: LocalHub) -> None:
    hub.add_repo("acme/tiny", sample_files())
    config = cfg(hub)
    await do_pull(config, "acme/tiny")
    hub.reset()
    again = await do_pull(config, "acme/tiny")
    assert again.downloaded == [] and again.bytes_downloaded == 0
    stats = hub.stats()
    assert stats.count("resolve") == 0 and stats.blob_bytes_sent == 0


@pytest.mark.anyio
async def test_local_dir_mode_writes_plain_files_and_metadata(hub: LocalHub, tmp_path: Path) -> None:
    files = sample_files()
    commit = hub.add_repo("acme/tiny", files)
    out = tmp_path / "out"
    await do_pull(cfg(hub), "acme/tiny", output=out)
    got = {k: v for k, v in snapshot_bytes(out).items() if not k.startswith(".cache/")}
    assert got == files
    assert not any(p.is_symlink() for p in out.rglob("*"))
    meta = (out / ".cache/huggingface/download/model.safetensors.metadata").read_text().splitlines()
    assert meta[0] == commit and meta[1] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    hub.reset()
    again = await do_pull(cfg(hub), "acme/tiny", output=out)
    assert again.downloaded == [] and hub.stats().count("resolve") == 0


@pytest.mark.anyio
async def test_multi_range_file_uses_parallel_ranges(hub: LocalHub) -> None:
    blob = os.urandom(1024 * KiB)
    hub.add_repo("acme/big", {"model.safetensors": blob})
    config = cfg(hub)
    await do_pull(config, "acme/big")
    ranges = [r.range for r in hub.stats().requests if r.kind == "blob" and r.method == "GET"]
    assert len(ranges) == 16 and all(r and r.startswith("bytes=") for r in ranges)


@pytest.mark.anyio
async def test_rides_out_429_with_retry_after_and_503s(hub: LocalHub) -> None:
    files = sample_files()
    hub.add_repo("acme/tiny", files)
    hub.fail(status=429, times=2, path_contains="/resolve/", retry_after="0")
    hub.fail(status=503, times=2, path_contains="/blobs/")
    events: list[Event] = []
    config = cfg(hub)
    result = await do_pull(config, "acme/tiny", events)
    assert not result.failed and result.retries >= 4
    assert {e.reason for e in events if isinstance(e, RetryScheduled)} >= {"429", "503"}
    snap = config.hub_cache / "models--acme--tiny" / "snapshots" / result.commit
    assert snapshot_bytes(snap) == files


@pytest.mark.anyio
async def test_connection_closed_mid_body_resumes_the_range(hub: LocalHub) -> None:
    blob = os.urandom(200 * KiB)
    hub.add_repo("acme/cut", {"model.safetensors": blob})
    hub.truncate_once(after_bytes=10 * KiB, path_contains="/blobs/")
    config = cfg(hub)
    result = await do_pull(config, "acme/cut")
    assert not result.failed
    assert pulled(config, "acme/cut", result).read_bytes() == blob
    assert hub.stats().faults_fired.get("truncate") == 1


@pytest.mark.anyio
async def test_flipped_byte_is_caught_and_refetched(hub: LocalHub) -> None:
    blob = os.urandom(100 * KiB)
    hub.add_repo("acme/flip", {"model.safetensors": blob, "config.json": b"{}"})
    hub.flip_byte_once(path_contains="/blobs/", offset=5)
    config = cfg(hub)
    result = await do_pull(config, "acme/flip")
    assert not result.failed
    assert pulled(config, "acme/flip", result).read_bytes() == blob


@pytest.mark.anyio
async def test_expired_signature_is_resolved_again(hub: LocalHub) -> None:
    blob = os.urandom(300 * KiB)
    hub.add_repo("acme/exp", {"model.safetensors": blob})
    hub.expire_signatures(times=2)
    config = cfg(hub)
    result = await do_pull(config, "acme/exp")
    assert not result.failed
    assert pulled(config, "acme/exp", result).read_bytes() == blob


@pytest.mark.anyio
async def test_a_download_host_that_keeps_refusing_fails_those_files_not_the_run(hub: LocalHub) -> None:
    files = {"model.safetensors": os.urandom(300 * KiB), "small.safetensors": os.urandom(10 * KiB)}
    hub.add_repo("acme/refused", {**files, "config.json": b"{}"})
    hub.expire_signatures(times=1000)
    config = cfg(hub)
    events: list[Event] = []
    result = await do_pull(config, "acme/refused", events)  # a BatutaError per file, not an ExceptionGroup
    failed = {f.path: f for f in result.failed}
    assert sorted(failed) == ["model.safetensors", "small.safetensors"] and result.downloaded == [
        "config.json"
    ]
    assert all(f.kind == "ForbiddenError" and "token" not in f.reason for f in result.failed)
    assert "refused model.safetensors (HTTP 403) 6 times" in failed["model.safetensors"].reason  # ranged
    assert "refused the download of small.safetensors (HTTP 403)" in failed["small.safetensors"].reason
    assert hub.stats().faults_fired["expired"] >= 12  # each file tried again with fresh links
    # ... backing off between them, not 190 requests in a second.
    assert sum(isinstance(e, RetryScheduled) and e.reason == "403" for e in events) >= 8
    cache = config.hub_cache / "models--acme--refused" / "blobs"
    # Nothing at a final path; the preallocated partial file stays for the next run to resume.
    assert [p.name for p in cache.iterdir() if p.stat().st_size > 1000 and ".incomplete" not in p.name] == []


@pytest.mark.anyio
async def test_a_range_that_fails_for_good_is_reported_for_its_file(hub: LocalHub) -> None:
    hub.add_repo("acme/down", {"model.safetensors": os.urandom(300 * KiB), "config.json": b"{}"})
    hub.fail(status=503, times=1000, path_contains="/blobs/")
    result = await do_pull(cfg(hub), "acme/down")
    assert [(f.path, f.kind) for f in result.failed] == [("model.safetensors", "HubServerError")]


@pytest.mark.anyio
async def test_stalled_connection_is_dropped_and_retried(hub: LocalHub) -> None:
    blob = os.urandom(128 * KiB)
    hub.add_repo("acme/stall", {"model.safetensors": blob})
    hub.stall_once(after_bytes=4 * KiB, seconds=20, path_contains="/blobs/")
    config = cfg(hub, stall_timeout_s=0.5)
    events: list[Event] = []
    result = await do_pull(config, "acme/stall", events)
    assert not result.failed
    assert any(isinstance(e, RetryScheduled) for e in events)
    assert pulled(config, "acme/stall", result).read_bytes() == blob


@pytest.mark.anyio
async def test_quantization_selection(hub: LocalHub) -> None:
    files = {
        "README.md": b"# gguf",
        "config.json": b"{}",
        "model.Q4_K_M.gguf": b"q4" * 100,
        "model.Q8_0.gguf": b"q8" * 100,
        "split-Q5_K_M-00001-of-00002.gguf": b"a" * 10,
        "split-Q5_K_M-00002-of-00002.gguf": b"b" * 10,
        "Q6_K/model-00001-of-00001.gguf": b"c" * 10,
    }
    hub.add_repo("acme/gguf", files)
    config = cfg(hub)
    one = await do_pull(config, "acme/gguf", quantization="q4_k_m", dry_run=True)
    assert sorted(f.path for f in one.files) == ["README.md", "config.json", "model.Q4_K_M.gguf"]
    split = await do_pull(config, "acme/gguf", quantization="Q5_K_M", dry_run=True)
    assert {f.path for f in split.files} >= {
        "split-Q5_K_M-00001-of-00002.gguf",
        "split-Q5_K_M-00002-of-00002.gguf",
    }
    folder = await do_pull(config, "acme/gguf", quantization="Q6_K")
    assert (
        "Q6_K/model-00001-of-00001.gguf" in folder.downloaded and "model.Q8_0.gguf" not in folder.downloaded
    )
    with pytest.raises(UsageError, match="Q4_K_M"):
        await do_pull(config, "acme/gguf", quantization="Q2_K")
    hub.add_repo("acme/plain", {"model.safetensors": b"s" * 10})
    with pytest.raises(UsageError, match="gguf"):
        await do_pull(config, "acme/plain", quantization="Q4_K_M")


@pytest.mark.anyio
async def test_unsafe_weights_are_blocked_unless_allowed(hub: LocalHub) -> None:
    hub.add_repo(
        "acme/mixed", {"model.safetensors": b"s" * 10, "pytorch_model.bin": b"p" * 10, "config.json": b"{}"}
    )
    hub.add_repo("acme/pickle", {"pytorch_model.bin": b"p" * 10, "config.json": b"{}"})
    config = cfg(hub)
    mixed = await do_pull(config, "acme/mixed")
    assert [b.path for b in mixed.blocked] == ["pytorch_model.bin"]
    assert "pytorch_model.bin" not in mixed.downloaded
    with pytest.raises(UsageError, match="--allow-unsafe"):
        await do_pull(config, "acme/pickle")
    allowed = await do_pull(config, "acme/pickle", allow_unsafe=True)
    assert "pytorch_model.bin" in allowed.downloaded and allowed.allowed_unsafe


@pytest.mark.anyio
async def test_include_exclude(hub: LocalHub) -> None:
    hub.add_repo("acme/tiny", sample_files())
    result = await do_pull(cfg(hub), "acme/tiny", include=("*.json", "tokenizer/"), exclude=("config.json",))
    assert sorted(f.path for f in result.files) == ["tokenizer/vocab.txt"]


@pytest.mark.anyio
async def test_errors_name_what_is_missing(hub: LocalHub) -> None:
    hub.add_repo("acme/tiny", {"config.json": b"{}"})
    config = cfg(hub, token=TOKEN)  # anonymous, a missing repo is the Hub's 401 (test_hub.py)
    with pytest.raises(NotFoundError, match="acme/nope"):
        await do_pull(config, "acme/nope")
    with pytest.raises(NotFoundError, match="revision 'v9'"):
        await do_pull(config, "acme/tiny", revision="v9")


@pytest.mark.anyio
async def test_gated_repo_needs_a_granted_token(hub: LocalHub) -> None:
    hub.add_repo("acme/gated", {"model.safetensors": b"g" * 100}, gated="manual")
    with pytest.raises(GatedRepoError):
        await do_pull(cfg(hub), "acme/gated")
    result = await do_pull(cfg(hub, token=TOKEN), "acme/gated")
    assert result.downloaded == ["model.safetensors"]
    assert hub.stats().blob_requests_with_auth == 0


@pytest.mark.anyio
async def test_offline_mode_uses_the_cache_only(hub: LocalHub) -> None:
    hub.add_repo("acme/tiny", sample_files())
    online = cfg(hub)
    with pytest.raises(OfflineError, match="not in the cache"):
        await do_pull(cfg(hub, offline=True), "acme/tiny")
    await do_pull(online, "acme/tiny", include=("*.json",))
    hub.reset()
    with pytest.raises(OfflineError, match="model.safetensors"):
        await do_pull(cfg(hub, offline=True), "acme/tiny")
    done = await do_pull(cfg(hub, offline=True), "acme/tiny", include=("*.json",))
    assert [f.path for f in done.files] == ["config.json"]
    assert hub.stats().total == 0


@pytest.mark.anyio
async def test_a_hub_that_refuses_connections_is_not_retried_when_the_disk_answers(
    hub: LocalHub, tmp_path: Path
) -> None:
    hub.add_repo("acme/tiny", sample_files())
    out = tmp_path / "plain"
    await do_pull(cfg(hub), "acme/tiny")
    await do_pull(cfg(hub), "acme/tiny", output=out)
    with refusing_endpoint() as dead:
        for dest in (None, out):
            events: list[Event] = []
            result = await do_pull(cfg(hub, endpoint=dead), "acme/tiny", events, output=dest)
            assert result.hub_unreachable and "after 1 attempt" in result.hub_unreachable
            assert not [e for e in events if isinstance(e, RetryScheduled)] and result.retries == 0
        # Nothing on disk answers for another repo: the whole retry schedule, as before.
        events = []
        with pytest.raises(ConnectError, match="after 6 attempts"):
            await do_pull(cfg(hub, endpoint=dead), "acme/other", events)
        assert [e.attempt for e in events if isinstance(e, RetryScheduled)] == [1, 2, 3, 4, 5]


@pytest.mark.anyio
async def test_max_rate_and_connections_options_are_honoured(hub: LocalHub) -> None:
    blob = os.urandom(512 * KiB)
    hub.add_repo("acme/rate", {"model.safetensors": blob})
    config = cfg(hub, max_connections=2, max_rate_bytes_s=4 * 1024 * 1024)
    result = await do_pull(config, "acme/rate")
    assert not result.failed and result.bytes_downloaded == len(blob)


# --- plain folders (-o): what is on disk against what the pull recorded ----------------------


def big_repo(hub: LocalHub, name: str) -> dict[str, bytes]:
    files = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(200 * KiB), "b.json": b"[]"}
    hub.add_repo(name, files)
    return files


@pytest.mark.anyio
async def test_offline_pull_into_a_folder_names_what_an_interrupted_pull_left_out(
    hub: LocalHub, tmp_path: Path
) -> None:
    big_repo(hub, "acme/part")
    out = tmp_path / "out"
    hub.fail(status=503, times=1000, path_contains="/blobs/")  # the large file never arrives
    partial = await do_pull(cfg(hub), "acme/part", output=out)
    assert [f.path for f in partial.failed] == ["model.safetensors"]
    offline = load_config({**os.environ, "HF_HUB_OFFLINE": "1"}, endpoint=hub.url, retry=FAST)
    with pytest.raises(OfflineError, match=r"1 files of acme/part@main are not cached: model\.safetensors"):
        await do_pull(offline, "acme/part", output=out)
    done = await do_pull(offline, "acme/part", output=out, include=("*.json",))
    assert sorted(done.skipped) == ["b.json", "config.json"]


@pytest.mark.anyio
async def test_a_folder_file_of_the_wrong_size_is_fetched_again_whatever_its_mtime(
    hub: LocalHub, tmp_path: Path
) -> None:
    files = big_repo(hub, "acme/stale")
    out = tmp_path / "out"
    await do_pull(cfg(hub), "acme/stale", output=out)
    old = (out / "config.json").stat()
    (out / "config.json").write_bytes(b'{"a": 1, "edited": true}')
    os.utime(out / "config.json", (old.st_atime, old.st_mtime - 60))  # as `cp -p` of an older file
    again = await do_pull(cfg(hub), "acme/stale", output=out)
    assert again.downloaded == ["config.json"] and (out / "config.json").read_bytes() == files["config.json"]


@pytest.mark.anyio
async def test_a_folder_in_the_way_fails_that_file_with_one_line(hub: LocalHub, tmp_path: Path) -> None:
    files = big_repo(hub, "acme/dir")
    out = tmp_path / "out"
    (out / "config.json").mkdir(parents=True)
    result = await do_pull(cfg(hub), "acme/dir", output=out)
    assert [(f.path, f.kind) for f in result.failed] == [("config.json", "IsADirectoryError")]
    assert result.failed[0].reason == f"a folder is where the file goes: {out / 'config.json'}"
    assert (out / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert not list((out / ".cache" / "huggingface" / "download").glob("config.json.*.incomplete"))


@pytest.mark.anyio
async def test_a_link_in_the_folder_leading_outside_is_named_not_blamed_on_the_server(
    hub: LocalHub, tmp_path: Path
) -> None:
    hub.add_repo("acme/linked", {"config.json": b"{}", "sub/model.safetensors": b"w" * 100})
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "sub").symlink_to(elsewhere)
    result = await do_pull(cfg(hub), "acme/linked", output=out)
    # The server's path is a clean one: the folder's own link is what leads out, so the failure
    # names that link (a usage error, this file only), and nothing is written through it.
    assert result.downloaded == ["config.json"] and list(elsewhere.iterdir()) == []
    assert [(f.path, f.kind) for f in result.failed] == [("sub/model.safetensors", "UsageError")]
    assert result.failed[0].reason == (
        f"refusing 'sub/model.safetensors': {out / 'sub'} is a link leading outside {out},"
        f" to {elsewhere.resolve()}"
    )


@pytest.mark.anyio
async def test_partials_of_files_completed_elsewhere_are_dropped(hub: LocalHub, tmp_path: Path) -> None:
    big_repo(hub, "acme/left")
    config = cfg(hub)
    result = await do_pull(config, "acme/left")
    blob = pulled(config, "acme/left", result).resolve()
    # What a killed run leaves when another client then finishes the same blob.
    partial = blob.with_name(blob.name + ".incomplete")
    partial.write_bytes(b"x" * 1000)
    partial.with_name(partial.name + ".progress").write_bytes(b"{}")
    again = await do_pull(config, "acme/left")
    assert again.downloaded == [] and sorted(again.skipped) == ["b.json", "config.json", "model.safetensors"]
    assert sorted(p.name for p in blob.parent.iterdir() if "incomplete" in p.name) == []


def test_files_a_run_waited_for_count_as_present_not_as_nothing() -> None:
    from engine._pull import FailedFile, PlannedFile

    files = [PlannedFile(p, 1, False, "download") for p in ("a", "b", "c")]
    result = PullResult("acme/x", "model", "main", "0" * 40, "/d", False, files, [])
    result.downloaded, result.failed = ["a"], [FailedFile("b", "boom", "HubError")]
    assert result.skipped == ["c"]  # fetched meanwhile by the process this one waited for
    plan = PullResult("acme/x", "model", "main", "0" * 40, "/d", True, files, [])
    assert plan.skipped == []


@pytest.mark.anyio
async def test_an_offline_pull_accepts_a_copied_folder_after_hashing_it(
    hub: LocalHub, tmp_path: Path
) -> None:
    import shutil

    files = big_repo(hub, "acme/copied")
    hub.add_repo("acme/other", {"other.json": b'{"other": true}'})
    out = tmp_path / "out"
    await do_pull(cfg(hub), "acme/copied", output=out)
    await do_pull(cfg(hub), "acme/other", output=out)  # a second repo into the same folder
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)  # new mtimes, as cp -r or scp -r give
    for p in copy.rglob("*.json"):
        if ".cache" not in p.parts:
            os.utime(p, (p.stat().st_atime + 120, p.stat().st_mtime + 120))
    offline = load_config({**os.environ, "HF_HUB_OFFLINE": "1"}, endpoint=hub.url, retry=FAST)
    result = await do_pull(offline, "acme/copied", output=copy)
    assert sorted(result.skipped) == sorted(files) and result.commit == hub.head("acme/copied")
    assert (await do_pull(offline, "acme/other", output=copy)).commit == hub.head("acme/other")
    (copy / "b.json").write_bytes(b"{}")  # same size as "[]": the hash catches it
    later = (copy / "b.json").stat().st_mtime + 300
    os.utime(copy / "b.json", (later, later))  # edited after the metadata was written
    with pytest.raises(OfflineError, match="b.json"):
        await do_pull(offline, "acme/copied", output=copy)


@pytest.mark.anyio
async def test_force_download_fetches_a_blob_shared_by_two_paths_once(hub: LocalHub) -> None:
    same = os.urandom(200 * KiB)
    hub.add_repo("acme/twins", {"a/model.safetensors": same, "b/model.safetensors": same})
    config = cfg(hub)
    await do_pull(config, "acme/twins")
    hub.reset()
    again = await do_pull(config, "acme/twins", force=True)
    assert sorted(again.downloaded) + sorted(again.skipped) == ["a/model.safetensors", "b/model.safetensors"]
    assert len(again.downloaded) == 1 and hub.stats().blob_bytes_sent == len(same)

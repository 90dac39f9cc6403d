"""Block-wise digests, the persistent hash cache, and file collection for push (no network)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

import anyio
import pytest
from huggingface_hub import scan_cache_dir

from engine import Event, FileHashed, UsageError, _hashing
from engine._hashing import (
    BLOCK_BYTES,
    Digest,
    FileKey,
    HashCache,
    Hasher,
    HashJob,
    collect_files,
    digest_bytes,
    git_blob_sha1,
    hash_file,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_old(path: Path, data: bytes, age_s: float = 60.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


def test_git_blob_sha1_matches_git(tmp_path: Path) -> None:
    data = b"hello\nworld\n"
    path = tmp_path / "f"
    path.write_bytes(data)
    try:
        out = subprocess.run(["git", "hash-object", str(path)], capture_output=True, check=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        expected = hashlib.sha1(b"blob 12\0" + data).hexdigest()
    else:
        expected = out.stdout.strip()
    assert git_blob_sha1(data) == expected == digest_bytes(data).sha1


def test_hash_file_reads_blocks_and_reports_progress(tmp_path: Path) -> None:
    data = os.urandom(2 * BLOCK_BYTES + 5)
    path = tmp_path / "big"
    path.write_bytes(data)
    seen: list[int] = []
    d = hash_file(path, sha256=True, sha1=True, progress=seen.append)
    assert d == Digest(len(data), hashlib.sha256(data).hexdigest(), git_blob_sha1(data))
    assert sum(seen) == len(data)
    only = hash_file(path, sha256=True, sha1=False)
    assert only.sha1 is None and only.sha256 == d.sha256
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert hash_file(empty, sha256=True, sha1=True) == digest_bytes(b"")


def test_cache_persists_and_forgets_changed_files(tmp_path: Path) -> None:
    db = tmp_path / "home" / "batuta" / "hashes.sqlite"
    f = write_old(tmp_path / "a.bin", b"abc")
    key = FileKey.of(f)
    cache = HashCache(db)
    assert cache.store({key: digest_bytes(b"abc")}) == 1
    cache.close()
    again = HashCache(db)
    assert again.lookup([key]) == {key: digest_bytes(b"abc")}
    write_old(f, b"abcd", age_s=30)  # new size and mtime: a new key
    assert again.lookup([FileKey.of(f)]) == {}
    again.close()


def test_cache_skips_racy_files_and_survives_a_corrupt_database(tmp_path: Path) -> None:
    f = tmp_path / "fresh.txt"
    f.write_bytes(b"x")
    cache = HashCache(tmp_path / "db.sqlite")
    assert cache.store({FileKey.of(f): digest_bytes(b"x")}) == 0  # written just now: not trusted yet
    cache.close()
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    broken = HashCache(bad)
    assert broken.lookup([FileKey.of(f)]) == {}
    assert broken.store({FileKey.of(f): digest_bytes(b"x")}, now_s=time.time() + 60) == 0
    assert not HashCache(None).enabled


@pytest.mark.anyio
async def test_hasher_uses_the_cache_and_computes_only_missing_digests(tmp_path: Path) -> None:
    files = {f"f{i}.bin": os.urandom(1000 + i) for i in range(6)}
    jobs = []
    for rel, data in files.items():
        p = write_old(tmp_path / "src" / rel, data)
        jobs.append(HashJob(rel, p, FileKey.of(p), sha256=True, sha1=False))
    db = tmp_path / "db.sqlite"
    events: list[Event] = []
    first = Hasher(HashCache(db), workers=3, on_event=events.append)
    got = await first.digest_all(jobs)
    assert {k: v.sha256 for k, v in got.items()} == {
        k: hashlib.sha256(v).hexdigest() for k, v in files.items()
    }
    assert first.bytes_hashed == sum(len(v) for v in files.values())
    assert sum(e.n for e in events if isinstance(e, FileHashed)) == first.bytes_hashed
    first.cache.close()

    second = Hasher(HashCache(db), workers=3)
    again = await second.digest_all(jobs)
    assert again == got and second.bytes_hashed == 0 and second.cache_hits == len(jobs)
    # Asking for sha1 too reads the files once more, and keeps the cached sha256.
    both = await second.digest_all([HashJob(j.rel, j.path, j.key, sha256=True, sha1=True) for j in jobs])
    assert all(d.sha1 == git_blob_sha1(files[k]) and d.sha256 == got[k].sha256 for k, d in both.items())
    second.cache.close()


@pytest.mark.anyio
async def test_digests_are_reported_as_they_land_and_concurrent_calls_share_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = []
    for i in range(8):
        p = write_old(tmp_path / f"f{i}.bin", os.urandom(100 + i))
        jobs.append(HashJob(p.name, p, FileKey.of(p), sha256=True, sha1=False))
    cache = HashCache(tmp_path / "db.sqlite")
    await Hasher(cache, workers=2).digest_all(jobs[:1])  # one cache hit for later
    running = peak = 0
    lock = threading.Lock()
    real = _hashing.hash_file

    def slow_hash(path: Path, **kw: bool | None) -> Digest:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return real(path, sha256=bool(kw["sha256"]), sha1=bool(kw["sha1"]))

    monkeypatch.setattr(_hashing, "hash_file", slow_hash)
    hasher = Hasher(cache, workers=2)
    seen: list[str] = []
    results: list[dict[str, Digest]] = []

    async def run(part: list[HashJob]) -> None:
        results.append(await hasher.digest_all(part, on_digest=lambda rel, d: seen.append(rel)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, jobs[:4])
        tg.start_soon(run, jobs[4:])
    assert peak == 2  # two calls at once, still never more threads than workers
    assert seen[0] == "f0.bin"  # the cache hit is reported before any file is read
    assert sorted(seen) == sorted(j.rel for j in jobs) and hasher.cache_hits == 1
    assert {**results[0], **results[1]}["f5.bin"].sha256 == hashlib.sha256(
        (tmp_path / "f5.bin").read_bytes()
    ).hexdigest()
    cache.close()


def test_collect_files_filters_and_validates(tmp_path: Path) -> None:
    root = tmp_path / "f"
    for rel in ("a.txt", "sub/b.json", ".git/HEAD", "x/.git/config", ".cache/huggingface/m", ".cache/other"):
        write_old(root / rel, b"1")
    assert [f.rel for f in collect_files(root)] == [".cache/other", "a.txt", "sub/b.json"]
    assert [f.rel for f in collect_files(root, include=("sub/",))] == ["sub/b.json"]
    assert [f.rel for f in collect_files(root, exclude=("*.txt", ".cache/*"))] == ["sub/b.json"]
    with pytest.raises(UsageError, match="matching --include/--exclude"):
        collect_files(root, include=("*.nope",))


def test_names_the_hub_cannot_store_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    root = tmp_path / "f"
    write_old(root / "config.json", b"{}")
    bad = os.fsdecode(b"sub/bad\xff.txt")  # as os.walk hands over bytes that are not UTF-8
    write_old(root / bad, b"1")
    with pytest.raises(UsageError, match=r"^cannot push 'sub/bad\\xff\.txt': file names must be UTF-8"):
        collect_files(root)
    assert [f.rel for f in collect_files(root, exclude=("sub/*",))] == ["config.json"]
    (root / bad).unlink()
    write_old(root / "back\\slash.txt", b"1")
    with pytest.raises(UsageError, match=r"the Hub does not take '\\' in file names"):
        collect_files(root)


def test_the_cache_lives_in_hf_home_and_an_old_one_in_the_hub_cache_moves_there(tmp_path: Path) -> None:
    # Parity repro: `hf cache ls` reported the hub cache's `.batuta/` folder as a corrupt repo.
    home, hub_cache = tmp_path / "home", tmp_path / "home" / "hub"
    f = write_old(tmp_path / "a.bin", b"abc")
    old = HashCache(hub_cache / ".batuta" / "hashes.sqlite")
    old.store({FileKey.of(f): digest_bytes(b"abc")})
    old.close()
    cache = HashCache.under(home, hub_cache)
    assert cache.path == home / "batuta" / "hashes.sqlite"
    assert cache.lookup([FileKey.of(f)]) == {FileKey.of(f): digest_bytes(b"abc")}  # adopted
    cache.close()
    assert not (hub_cache / ".batuta").exists()
    assert scan_cache_dir(hub_cache).warnings == []

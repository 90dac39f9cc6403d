"""The secret scan on several processes gives exactly the serial scan's findings, in its order."""

from __future__ import annotations

import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from engine import _scanpool
from engine._scanpool import scan_paths
from engine._secretfiles import scan_folder
from tests.archives import tar_bytes

TOKEN = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3f"
FILLER = b"lorem ipsum dolor sit amet, consectetur adipiscing elit\n"


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files handed to worker processes."""
    seen: list[str] = []

    class Spy(ProcessPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            seen.extend(args[1])
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(_scanpool, "ProcessPoolExecutor", Spy)
    return seen


def folder(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": FILLER * 300 + f"HF_TOKEN={TOKEN}\n".encode(),  # found on line 301
        "b.jsonl": FILLER * 500,
        "c.log": f"x {TOKEN}\n".encode() + FILLER * 400 + f"y {TOKEN}\n".encode(),
        "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + FILLER * 400 + TOKEN.encode(),
        ".env": b"A=1\n",
        "small.txt": f"{TOKEN}\n".encode(),
        f"backup/{TOKEN}.txt": f"{TOKEN}\n".encode(),  # reported under its masked name
        "ckpt.tar.gz": tar_bytes(
            {"noise.dat": random.Random(3).randbytes(4096), "run.py": f"t = '{TOKEN}'\n".encode()}, "w:gz"
        ),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_the_pool_finds_what_the_serial_scan_finds_in_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, submitted: list[str]
) -> None:
    monkeypatch.setattr(_scanpool, "BIG_FILE_BYTES", 1024)
    monkeypatch.setattr(_scanpool, "PARALLEL_TEXT_BYTES", 1024)
    files = folder(tmp_path)
    rels = list(files)
    serial = scan_folder(tmp_path, rels)
    assert [(f.path, f.line) for f in serial] == [
        ("a.txt", 301), ("c.log", 1), ("c.log", 402), ("model.safetensors", None), (".env", None),
        ("small.txt", 1), (f"backup/{TOKEN[:5]}…(37 chars).txt", None), (f"backup/{TOKEN[:5]}…(37 chars).txt", 1),
        ("ckpt.tar.gz!/run.py", 1),
    ]  # fmt: skip
    parallel = scan_paths(tmp_path, rels, [len(files[r]) for r in rels], workers=2)
    assert parallel == serial
    # Large text files and archives went to the workers; the weights and small files stayed here.
    assert sorted(submitted) == ["a.txt", "b.jsonl", "c.log", "ckpt.tar.gz"]


def test_little_text_or_one_worker_starts_no_pool(tmp_path: Path, submitted: list[str]) -> None:
    files = folder(tmp_path)
    rels = list(files)
    sizes = [len(files[r]) for r in rels]
    assert scan_paths(tmp_path, rels, sizes, workers=8) == scan_folder(tmp_path, rels)
    assert scan_paths(tmp_path, rels, sizes, workers=1) == scan_folder(tmp_path, rels)
    assert submitted == []


def test_a_pool_that_cannot_start_falls_back_to_the_serial_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures.process import BrokenProcessPool

    def broken(*args: object) -> object:
        raise BrokenProcessPool("a worker could not start")

    monkeypatch.setattr(_scanpool, "BIG_FILE_BYTES", 1024)
    monkeypatch.setattr(_scanpool, "PARALLEL_TEXT_BYTES", 1024)
    monkeypatch.setattr(_scanpool, "_in_pool", broken)
    files = folder(tmp_path)
    rels = list(files)
    assert scan_paths(tmp_path, rels, [len(files[r]) for r in rels], workers=2) == scan_folder(tmp_path, rels)


def test_the_cli_opts_in_and_the_engine_api_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, submitted: list[str], run_cli: Any
) -> None:
    import anyio

    from engine import Engine, RepoRef, SecretsFoundError, load_config
    from engine._pushtypes import PushOptions

    monkeypatch.setattr(_scanpool, "BIG_FILE_BYTES", 1024)
    monkeypatch.setattr(_scanpool, "PARALLEL_TEXT_BYTES", 1024)
    root = tmp_path / "model"
    root.mkdir()
    folder(root)
    # The scan refuses before any request, so the endpoint is never reached.
    endpoint, token = "http://127.0.0.1:9", "hf_scanpool_token_000000000000000"

    async def engine_push() -> None:
        config = load_config({"HF_HOME": str(tmp_path / "home")}, endpoint=endpoint, token=token)
        async with Engine(config) as engine:
            await engine.push(RepoRef.parse("model", "acme/x"), root, PushOptions(card=False))

    with pytest.raises(SecretsFoundError):
        anyio.run(engine_push)
    assert submitted == []  # a program embedding the engine may not be re-importable
    r = run_cli(
        "--endpoint", endpoint, "--token", token, "hf", "push", "model", str(root), "--repo", "acme/x"
    )
    assert r.exit_code == 12 and "a.txt:301" in r.stderr and "ckpt.tar.gz!/run.py:1" in r.stderr
    assert sorted(submitted) == ["a.txt", "b.jsonl", "c.log", "ckpt.tar.gz"]

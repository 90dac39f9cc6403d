"""`batuta hf push` scans text files of any size for secrets, and still sends large weights.

Audit repro: a 2.5 MiB text file with `HF_TOKEN=hf_…` on line 1 used to go out, because files
over 2 MiB were never read.
"""

from __future__ import annotations

import pickle
import random
import string
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.errors import ExitCode
from engine.testing.hub import LocalHub
from tests.archives import tar_bytes

Run = Callable[..., object]
WRITER = "hf_cli_writer_token_large_000000000"
MiB = 1024 * 1024
# Assembled at run time, so that this file never holds a token verbatim; 34 letters, both cases.
_RNG = random.Random(2024)
TOKEN = "hf" + "_" + "".join(_RNG.choice(string.ascii_letters) for _ in range(32)) + "aZ"
LINES = b"".join(
    b"%07d the quick brown fox jumps over the lazy dog, again and again\n" % i for i in range(50_000)
)


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread() as h:
        h.add_token(WRITER, user="acme", role="write")
        yield h


def push(run_cli: Run, hub: LocalHub, folder: Path, *extra: str) -> object:
    return run_cli(
        "--endpoint", hub.url, "--token", WRITER, "hf", "push", "model", str(folder), "--repo", "acme/big",
        "--no-card", *extra,
    )  # fmt: skip


def out(r: object) -> str:
    return str(r.stdout) + str(r.stderr)  # type: ignore[attr-defined]


def code(r: object) -> int:
    return int(r.exit_code)  # type: ignore[attr-defined]


def text_of(n_bytes: int) -> bytes:
    return (LINES * (n_bytes // len(LINES) + 1))[:n_bytes]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "config.json").write_text('{"model_type": "gpt2"}')
    # Weights: binary by their first bytes, searched for token shapes only.
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    weights = len(header).to_bytes(8, "little") + header + text_of(3 * MiB)
    (root / "model.safetensors").write_bytes(weights)
    return root


def test_a_token_on_line_1_of_a_large_text_file_stops_the_push(
    run_cli: Run, hub: LocalHub, folder: Path
) -> None:
    (folder / "big.txt").write_bytes(f"HF_TOKEN={TOKEN}\n".encode() + text_of(5 * MiB // 2))
    r = push(run_cli, hub, folder)
    assert code(r) == ExitCode.SECRETS_FOUND, r
    assert "big.txt:1: Hugging Face token" in out(r) and "refusing to push: 1 possible secret found" in out(r)
    assert TOKEN not in out(r)
    assert hub.stats().total == 0  # not even the repo was created
    ok = push(run_cli, hub, folder, "--exclude", "big.txt")
    assert code(ok) == 0, ok
    assert (hub.repo_dir("acme/big") / "model.safetensors").stat().st_size > 3 * MiB


def test_a_token_on_the_last_line_of_a_large_log_is_reported_on_that_line(
    run_cli: Run, hub: LocalHub, folder: Path
) -> None:
    body = text_of(3 * MiB)
    (folder / "train.log").write_bytes(body + f"\nlogin ok, token={TOKEN}\n".encode())
    r = push(run_cli, hub, folder)
    assert code(r) == ExitCode.SECRETS_FOUND, r
    last_line = body.count(b"\n") + 2
    assert f"train.log:{last_line}: Hugging Face token" in out(r)
    assert TOKEN not in out(r) and hub.stats().total == 0


def test_a_token_inside_a_pickle_stops_the_push(run_cli: Run, hub: LocalHub, folder: Path) -> None:
    # What transformers' Trainer saves beside the weights: its arguments, hub_token included.
    (folder / "training_args.bin").write_bytes(pickle.dumps({"hub_token": TOKEN, "learning_rate": 5e-5}))
    r = push(run_cli, hub, folder)
    assert code(r) == ExitCode.SECRETS_FOUND, r
    assert "training_args.bin: Hugging Face token in binary data at byte" in out(r) and TOKEN not in out(r)
    assert hub.stats().total == 0


@pytest.mark.parametrize("name,mode", [("ckpt.tar.gz", "w:gz"), ("ckpt.tar", "w"), ("ckpt.tar.xz", "w:xz")])
def test_a_token_inside_a_compressed_checkpoint_archive_stops_the_push(
    run_cli: Run, hub: LocalHub, folder: Path, name: str, mode: str
) -> None:
    # A checkpoint folder tarred as it is: weights first, then the Trainer's pickle with hub_token.
    members = {
        "checkpoint-500/model.safetensors": (folder / "model.safetensors").read_bytes(),
        "checkpoint-500/training_args.bin": pickle.dumps({"hub_token": TOKEN, "seed": 42}),
    }
    (folder / name).write_bytes(tar_bytes(members, mode))
    r = push(run_cli, hub, folder)
    assert code(r) == ExitCode.SECRETS_FOUND, r
    assert f"{name}!/checkpoint-500/training_args.bin: Hugging Face token in binary data" in out(r)
    assert TOKEN not in out(r) and hub.stats().total == 0


def test_a_clean_archive_is_pushed(run_cli: Run, hub: LocalHub, folder: Path) -> None:
    (folder / "samples.tar.gz").write_bytes(tar_bytes({"a.txt": b"hello\n", "b.json": b"{}"}, "w:gz"))
    r = push(run_cli, hub, folder)
    assert code(r) == 0, r
    assert (hub.repo_dir("acme/big") / "samples.tar.gz").stat().st_size > 0

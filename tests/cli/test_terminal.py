"""Progress displays on a real terminal (a pty): shown to a person, never to a pipe or with --quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.testing.hub import LocalHub

MiB = 1024 * 1024
WRITER = "hf_terminal_writer_token_0000000000"
HIDE_CURSOR = "\x1b[?25l"  # what rich's live display writes first


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread() as h:
        h.add_token(WRITER, user="acme", role="write")
        h.add_repo("acme/term", {"config.json": b"{}", "model.safetensors": os.urandom(4 * MiB)})
        h.throttle(per_conn_bytes_s=8 * MiB)  # long enough for the display to draw
        yield h


def run(args: list[str], env: dict[str, str], *, tty_stdout: bool = True) -> tuple[int, str, str]:
    """Run the CLI with stderr (and stdout unless told) on a pseudo-terminal: (code, tty text, stdout)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave if tty_stdout else subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        seen += data
    out = ""
    if proc.stdout is not None:
        with proc.stdout:
            out = proc.stdout.read().decode()
    code = proc.wait(timeout=60)
    os.close(master)
    return code, seen.decode(errors="replace"), out


def env_for(hub: LocalHub, home: Path) -> dict[str, str]:
    return {**os.environ, "HF_HOME": str(home), "HF_ENDPOINT": hub.url, "TERM": "xterm-256color"}


def test_pull_draws_progress_on_a_terminal_only(hub: LocalHub, tmp_path: Path) -> None:
    env = env_for(hub, tmp_path / "home")
    pull = ["hf", "pull", "model", "acme/term"]
    code, screen, _ = run([*pull, "-o", str(tmp_path / "a")], env)
    assert code == 0 and HIDE_CURSOR in screen and "pulled acme/term@main" in screen
    code, screen, _ = run([*pull, "-o", str(tmp_path / "b"), "--quiet"], env)
    assert code == 0 and HIDE_CURSOR not in screen and "pulled acme/term@main" in screen
    # DIR=$(batuta hf pull ...): stdout is captured, so nothing animates on the terminal either.
    code, screen, out = run([*pull, "-o", str(tmp_path / "c")], env, tty_stdout=False)
    assert code == 0 and HIDE_CURSOR not in screen and out == f"{tmp_path / 'c'}\n"


def test_push_draws_progress_on_a_terminal_unless_quiet(hub: LocalHub, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(os.urandom(2 * MiB))
    env = env_for(hub, tmp_path / "home")
    push = ["--token", WRITER, "hf", "push", "model", str(folder), "--repo", "acme/pushed", "--no-card"]
    code, screen, _ = run(push, env)
    assert code == 0 and HIDE_CURSOR in screen and "pushed 1 new" in screen
    (folder / "model.safetensors").write_bytes(os.urandom(2 * MiB))
    code, screen, _ = run([*push, "--quiet"], env)
    assert code == 0 and HIDE_CURSOR not in screen and "pushed 0 new and 1 changed" in screen
    (folder / "model.safetensors").write_bytes(os.urandom(2 * MiB))
    code, screen, _ = run(push, {**env, "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    assert code == 0 and HIDE_CURSOR not in screen and "pushed 0 new and 1 changed" in screen

"""Shared helpers for the benchmarks: a server process, admin faults, timing, medians, RSS."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
BATUTA = [sys.executable, "-m", "cli"]
HF = [str(VENV_BIN / "hf")]
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`batuta hf serve` in its own process (own CPU budget), admin routes enabled."""

    def __init__(self, root: Path) -> None:
        self.port, self.blob_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "BATUTA_SERVE_TESTING": "1"}
        cmd = [
            *BATUTA,
            "hf",
            "serve",
            "--root",
            str(root),
            "--port",
            str(self.port),
            "--blob-port",
            str(self.blob_port),
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/models?limit=1", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("bench: server did not start") from None
                time.sleep(0.1)

    def admin(self, path: str, body: Mapping[str, object] | None = None) -> object:
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(f"{self.url}/_batuta/{path}", data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def faults(self, **body: object) -> None:
        self.admin("reset")
        if body:
            self.admin("faults", body)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@dataclass
class Run:
    seconds: float
    max_rss_kib: int


def timed(cmd: Sequence[str], env: Mapping[str, str]) -> Run:
    """Run `cmd` to completion through a wrapper that reports its peak RSS (RUSAGE_CHILDREN)."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], env=dict(env), capture_output=True, text=True)
    try:
        secs, rss, code = out.stdout.split()
    except ValueError:
        raise SystemExit(f"bench: wrapper failed: {out.stderr[-500:]}") from None
    if code != "0":
        raise SystemExit(f"bench: {' '.join(cmd[:6])}... exited {code}: {out.stderr[-800:]}")
    return Run(float(secs), int(rss))


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def write_meta(root: Path, repo_id: str, meta: Mapping[str, object]) -> None:
    ns, name = repo_id.split("/")
    (root / "models" / ns / f"{name}.meta.json").write_text(json.dumps(meta))


def write_large(path: Path, mib: int, index: int, chunk: bytes) -> None:
    """`mib` MiB of `chunk` (1 MiB) with the block number and `index` stamped in each block, so no
    two files or blocks share a digest; kept when it already has the right size."""
    if path.exists() and path.stat().st_size == mib * MiB:
        return
    with path.open("wb") as fh:
        for j in range(mib):
            fh.write(chunk[:-16] + j.to_bytes(8, "little") + index.to_bytes(8, "little"))


def bytecode_prefix(env: Mapping[str, str], pycache: Path) -> dict[str, str]:
    """`env` letting batuta run from cached bytecode under `pycache`, as an installed wheel does.

    The project is an editable install; with PYTHONDONTWRITEBYTECODE=1 (set in these shells)
    every run would compile engine/ and cli/ from source, while `hf` runs from site-packages,
    whose bytecode pip wrote at install time. A bytecode prefix, warmed once, levels that.
    """
    out = dict(env)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    out["PYTHONPYCACHEPREFIX"] = str(pycache)
    return out


def bytecode_env(env: Mapping[str, str], pycache: Path) -> dict[str, str]:
    """`bytecode_prefix`, warmed with the modules a pull and a push load."""
    out = bytecode_prefix(env, pycache)
    code = "import cli.app, cli.push, cli.render, engine, engine._pull, engine._download, engine._push"
    subprocess.run([sys.executable, "-c", code], env=out, check=True)
    return out

"""Push benchmark: `batuta hf push` vs the official `hf upload` (HF_HUB_DISABLE_XET=1).

Folder (issue 4): 8 x 512 MiB safetensors + 200 small text files (4 GiB), generated on the RAM
disk. Steps, each one whole command: the first push into a new repo, a re-push of the unchanged
folder, and a re-push after changing one small file. Both tools run against the same local server
(`python -m engine.server`, its own process); rounds interleave the tools; medians and ratios.

Fairness: every first push starts cold (fresh HF cache, so batuta's hash cache is empty) and the
server forgets every LFS object between runs, so no tool benefits from the other's uploads. Both
tools run from bytecode, as installed packages do (see `tool_env`).

    .venv/bin/python benchmarks/bench_push.py             # full size, 3 rounds
    .venv/bin/python benchmarks/bench_push.py --scale 0.0625 --rounds 1   # quick: 256 MiB
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

from _common import BATUTA, HF, MiB, Run, bytecode_prefix, fresh, median, timed, write_large

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.testing.hub import ServerProcess  # noqa: E402

TOKEN = "hf_bench_push_writer_token_0000000000"
STEPS = ("first push", "unchanged re-push", "one small change")


def generate(folder: Path, scale: float, n_large: int = 8, n_small: int = 200) -> int:
    """Write the folder (deterministic, distinct content per MiB); returns its size in bytes."""
    large_mib = max(1, int(512 * scale))
    chunk = os.urandom(MiB)
    total = 0
    for i in range(n_large):
        write_large(folder / f"model-{i + 1:05d}-of-{n_large:05d}.safetensors", large_mib, i, chunk)
        total += large_mib * MiB
    small = folder / "small"
    small.mkdir(exist_ok=True)
    for i in range(n_small):
        text = (f"item {i}: " + "lorem ipsum dolor sit amet " * (40 + i * 9))[: 1024 + i * 250]
        (small / f"file-{i:03d}.txt").write_text(text)
        total += len(text)
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    )
    past = time.time() - 5  # as if written a moment ago by a training run, not in the same instant
    for p in folder.rglob("*"):
        os.utime(p, (past, past))
    return total


def forget(server: ServerProcess, repo_id: str) -> None:
    """Delete the repo and the server's LFS store, so the next tool uploads everything again."""
    ns, name = repo_id.split("/")
    body = json.dumps({"name": name, "organization": ns, "type": "model"}).encode()
    req = urllib.request.Request(f"{server.url}/api/repos/delete", data=body, method="DELETE")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(req, timeout=60):
        pass
    shutil.rmtree(server.root / ".batuta" / "lfs", ignore_errors=True)


def tool_env(tool: str, server: ServerProcess, cache: Path, pycache: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "HF_ENDPOINT": server.url,
        "HF_HOME": str(cache),
        "HF_HUB_CACHE": str(cache / "hub"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    # batuta's bytecode prefix is warmed once by `warm_up` (a push loads other modules than a pull).
    return bytecode_prefix(env, pycache) if tool == "batuta" else env


def warm_up(server: ServerProcess, work: Path) -> None:
    """One untimed batuta dry run, so the bytecode of every module a push loads is cached."""
    tiny = work / "warm-up"
    tiny.mkdir(parents=True, exist_ok=True)
    (tiny / "config.json").write_text("{}")
    env = tool_env("batuta", server, fresh(work / "cache-warm-up"), work / "pycache")
    cmd = [*BATUTA, "--token", TOKEN, "hf", "push", "model", str(tiny), "--repo", "bench/warm-up"]
    timed([*cmd, "--dry-run"], env)


def run_tool(tool: str, server: ServerProcess, folder: Path, repo_id: str, cache: Path) -> list[Run]:
    env = tool_env(tool, server, cache, cache.parent / "pycache")
    if tool == "batuta":
        cmd = [*BATUTA, "--token", TOKEN, "hf", "push", "model", str(folder), "--repo", repo_id]
    else:
        cmd = [*HF, "upload", repo_id, str(folder), ".", "--token", TOKEN]
    runs = [timed(cmd, env), timed(cmd, env)]
    changed = folder / "small" / "file-007.txt"
    changed.write_text(f"changed by {tool} for {repo_id} at {time.time()}\n")
    runs.append(timed(cmd, env))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 512 MiB per large file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/dev/shm/batuta-bench-push"))
    args = parser.parse_args()

    work = args.workdir
    folder = work / "folder"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    size = generate(folder, args.scale)
    print(f"folder: {size / MiB:.0f} MiB in {sum(1 for _ in folder.rglob('*') if _.is_file())} files "
          f"(generated in {time.perf_counter() - t0:.1f} s), cores: {os.cpu_count()}")  # fmt: skip
    results: dict[str, list[list[Run]]] = {"batuta": [], "hf upload": []}
    with ServerProcess(fresh(work / "server")) as server:
        server.add_token(TOKEN, user="bench", role="write")
        warm_up(server, work)
        for r in range(args.rounds):
            order = ("batuta", "hf upload") if r % 2 == 0 else ("hf upload", "batuta")
            for tool in order:
                repo_id = f"bench/{'batuta' if tool == 'batuta' else 'hf'}-r{r}"
                runs = run_tool(tool, server, folder, repo_id, fresh(work / f"cache-{tool[:2]}-{r}"))
                results[tool].append(runs)
                print(
                    f"round {r + 1} {tool:>9}: " + "  ".join(f"{x.seconds:7.2f} s" for x in runs), flush=True
                )
                forget(server, repo_id)
                shutil.rmtree(work / f"cache-{tool[:2]}-{r}", ignore_errors=True)
    print()
    print(
        f"{'step':<20}{'batuta (s)':>12}{'hf upload (s)':>15}{'speed-up':>10}{'batuta RSS':>12}{'hf RSS':>10}"
    )
    for i, step in enumerate(STEPS):
        b = median([rounds[i].seconds for rounds in results["batuta"]])
        h = median([rounds[i].seconds for rounds in results["hf upload"]])
        brss = max(rounds[i].max_rss_kib for rounds in results["batuta"]) // 1024
        hrss = max(rounds[i].max_rss_kib for rounds in results["hf upload"]) // 1024
        print(f"{step:<20}{b:>12.2f}{h:>15.2f}{h / b:>9.1f}x{brss:>9} MiB{hrss:>6} MiB")
    if args.workdir == Path("/dev/shm/batuta-bench-push"):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Pull benchmark: batuta vs `hf download` vs `aria2c -x16 -s16` (plain, and verifying sha256), interleaved.

Cases (issue 3): 4 x 512 MiB safetensors + small JSON files with the blob route capped at
40 MB/s per connection and 30 ms latency; the same with a 125 MB/s aggregate cap; 2 000 files
of 1-50 KiB with 30 ms latency. Destinations on the RAM disk (/dev/shm) and on the work disk.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from _common import BATUTA, HF, MiB, Run, Server, bytecode_env, fresh, median, timed, write_large, write_meta

PER_CONN = 40_000_000
LATENCY = 0.03
AGGREGATE = 125_000_000
ARIA = "aria2c -x16 -s16"
# The same aria2c told each file's sha256: the only like-for-like peer, as batuta verifies every byte.
ARIA_VERIFIED = "aria2c + sha256"


def generate(root: Path, large_mib: int, n_large: int, n_small: int) -> None:
    big = root / "models" / "bench" / "large"
    big.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(MiB)
    for i in range(n_large):
        write_large(big / f"model-{i + 1:05d}-of-{n_large:05d}.safetensors", large_mib, i, chunk)
    for name in (
        "config.json",
        "generation_config.json",
        "tokenizer_config.json",
        "model.safetensors.index.json",
    ):
        (big / name).write_text(json.dumps({"name": name, "pad": "x" * 2000}))
    write_meta(root, "bench/large", {"pipeline_tag": "text-generation"})
    small = root / "models" / "bench" / "small"
    small.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    for i in range(n_small):
        path = small / f"shard{i // 200:02d}" / f"item-{i:05d}.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(
                os.urandom(rng.randint(1024, 50 * 1024)).hex().encode()[: rng.randint(1024, 50 * 1024)]
            )
    write_meta(root, "bench/small", {})


def resolved_urls(server: Server, repo: str) -> list[tuple[str, str, str | None]]:
    """(url, path, LFS sha256) for every file: the CDN URL for LFS files, the resolve URL for the others."""
    with urllib.request.urlopen(f"{server.url}/api/models/{repo}/tree/main?recursive=true", timeout=60) as r:
        tree = json.load(r)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kw: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    out = []
    for entry in tree:
        if entry["type"] != "file":
            continue
        url = f"{server.url}/{repo}/resolve/main/{entry['path']}"
        req = urllib.request.Request(url, method="HEAD")
        try:
            with opener.open(req, timeout=30) as resp:
                location = resp.headers.get("Location")
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location")
        oid = entry["lfs"]["oid"] if entry.get("lfs") else None
        out.append((urllib.parse.urljoin(url, location) if location else url, entry["path"], oid))
    return out


def contenders(
    server: Server, repo: str, work: Path, aria: bool, verified_aria: bool
) -> dict[str, Callable[[], Run]]:
    base = {
        **os.environ,
        "HF_ENDPOINT": server.url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    base.pop("HF_TOKEN", None)
    batuta_env = bytecode_env(base, work / "pycache")

    def batuta() -> Run:
        home = fresh(work / "batuta-home")
        return timed([*BATUTA, "hf", "pull", "model", repo, "--quiet"], {**batuta_env, "HF_HOME": str(home)})

    def hf() -> Run:
        home = fresh(work / "hf-home")
        return timed([*HF, "download", repo], {**base, "HF_HOME": str(home)})

    out: dict[str, Callable[[], Run]] = {"batuta": batuta, "hf download": hf}
    if aria:
        listing = work / "aria2-input.txt"

        def aria2(verify: bool) -> Callable[[], Run]:
            def run() -> Run:
                dest = fresh(work / "aria2-out")
                lines = []
                for url, path, oid in resolved_urls(server, repo):
                    lines.append(f"{url}\n  out={path}\n")
                    if verify and oid:
                        # aria2c checks a whole-file digest after the last byte, in a second pass.
                        lines.append(f"  checksum=sha-256={oid}\n")
                listing.write_text("".join(lines))
                cmd = [
                    "aria2c",
                    "-x16",
                    "-s16",
                    "-j16",
                    "-i",
                    str(listing),
                    "-d",
                    str(dest),
                    "--file-allocation=none",
                    "--console-log-level=error",
                    "--summary-interval=0",
                    "--allow-overwrite=true",
                    "--auto-file-renaming=false",
                ]
                return timed(cmd, base)

            return run

        out[ARIA] = aria2(verify=False)
        if verified_aria:
            out[ARIA_VERIFIED] = aria2(verify=True)
    return out


def bench_case(
    title: str,
    server: Server,
    repo: str,
    work: Path,
    rounds: int,
    total_bytes: int,
    aria: bool,
    only: tuple[str, ...] | None = None,
    connections: dict[str, int] | None = None,
    verified_aria: bool = False,
) -> dict[str, dict[str, float]]:
    runs = contenders(server, repo, work, aria, verified_aria)
    if only:
        runs = {k: v for k, v in runs.items() if k in only}
    times: dict[str, list[float]] = {k: [] for k in runs}
    rss: dict[str, list[int]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # interleave: rotate who goes first
        for name in order:
            res = runs[name]()
            times[name].append(res.seconds)
            rss[name].append(res.max_rss_kib)
    print(f"\n## {title}  (median of {rounds} rounds, {total_bytes / 1e6:.0f} MB)")
    print(f"{'tool':<20}{'wall s':>9}{'MB/s':>9}{'peak RSS MiB':>14}{'batuta x':>10}")
    result: dict[str, dict[str, float]] = {}
    b = median(times["batuta"]) if "batuta" in times else 0.0
    for name in names:
        t = median(times[name])
        result[name] = {"seconds": t, "mb_s": total_bytes / 1e6 / t, "rss_mib": max(rss[name]) / 1024}
        ratio = t / b if b else 0.0
        print(f"{name:<20}{t:>9.2f}{total_bytes / 1e6 / t:>9.1f}{max(rss[name]) / 1024:>14.1f}{ratio:>10.2f}")
    if connections:
        for name, n in connections.items():
            if name in result:
                cap = n * PER_CONN / 1e6
                print(
                    f"{name}: {result[name]['mb_s']:.0f} MB/s over {n} connections = "
                    f"{100 * result[name]['mb_s'] / cap:.0f} % of the {cap:.0f} MB/s the server can deliver to them"
                )
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--large-mib", type=int, default=512)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=Path("/dev/shm/batuta-bench"))
    ap.add_argument("--disk", type=Path, default=Path(__file__).resolve().parent.parent / ".bench-disk")
    ap.add_argument("--skip-disk", action="store_true")
    ap.add_argument("--only", choices=("large", "aggregate", "small"), help="run a single case")
    args = ap.parse_args()

    if shutil.which("aria2c") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "aria2"], capture_output=True)
    aria = shutil.which("aria2c") is not None
    root = args.data / "root"
    generate(root, args.large_mib, args.files, args.small)
    large_bytes = sum(p.stat().st_size for p in (root / "models/bench/large").iterdir())
    small_bytes = sum(p.stat().st_size for p in (root / "models/bench/small").rglob("*") if p.is_file())
    server = Server(root)
    try:
        # Warm the server's hash cache so no contender pays for the first sha256 of 2 GiB.
        urllib.request.urlopen(
            f"{server.url}/api/models/bench/large/tree/main?recursive=true", timeout=600
        ).read()
        urllib.request.urlopen(
            f"{server.url}/api/models/bench/small/tree/main?recursive=true", timeout=600
        ).read()
        print(
            f"# pull benchmark: server capped at {PER_CONN / 1e6:.0f} MB/s per connection, {LATENCY * 1000:.0f} ms latency"
        )
        wanted = {args.only} if args.only else {"large", "aggregate", "small"}
        base = {"per_conn_bytes_s": PER_CONN, "latency_s": LATENCY, "api_latency_s": LATENCY}
        conns = {
            "batuta": 32,
            "hf download": args.files,
            ARIA: 16 * args.files,
            ARIA_VERIFIED: 16 * args.files,
        }
        if "large" in wanted:
            server.faults(throttle=base)
            dests = [("/dev/shm", args.data / "work")]
            if not args.skip_disk:
                dests.append((f"disk ({args.disk})", args.disk))
            for label, work in dests:
                bench_case(
                    f"large files, destination {label}",
                    server,
                    "bench/large",
                    work,
                    args.rounds,
                    large_bytes,
                    aria,
                    connections=conns,
                    verified_aria=True,
                )
            shutil.rmtree(args.disk, ignore_errors=True)
        if "aggregate" in wanted:
            server.faults(throttle={**base, "aggregate_bytes_s": AGGREGATE})
            res = bench_case(
                "large files, aggregate cap 125 MB/s (1 Gbit/s link), /dev/shm",
                server,
                "bench/large",
                args.data / "work",
                args.rounds,
                large_bytes,
                aria,
                only=("batuta",),
            )
            print(
                f"batuta reaches {100 * res['batuta']['mb_s'] / (AGGREGATE / 1e6):.1f} % of the 125 MB/s cap"
            )
        if "small" in wanted:
            server.faults(throttle={"latency_s": LATENCY, "api_latency_s": LATENCY})
            bench_case(
                f"{args.small} small files (1-50 KiB), 30 ms latency on every request, /dev/shm",
                server,
                "bench/small",
                args.data / "work",
                args.rounds,
                small_bytes,
                aria=False,
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()

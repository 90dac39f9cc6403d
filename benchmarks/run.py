"""`make bench`: the pull benchmark, then the push benchmark, each in its own process.

Extra arguments go to both scripts' shared flags only through their own command lines; run
`benchmarks/bench_pull.py --help` / `benchmarks/bench_push.py --help` for quick, smaller runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    for script in ("bench_pull.py", "bench_push.py"):
        print(f"\n=== {script} ===", flush=True)
        code = subprocess.run([sys.executable, str(HERE / script)], cwd=HERE).returncode
        if code != 0:
            raise SystemExit(f"{script} failed with exit code {code}")


if __name__ == "__main__":
    main()

"""The push's secret scan over many files, on every core when there is much text to read.

The scanner is regex work that holds the GIL, so threads would not speed it up; processes do.
A worker costs ~0.1 s to start, which only pays off with a lot of text: small pushes, and folders
of weights (binary files are never read past their first bytes), stay in this process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from engine._secrets import Finding, scan_folder, text_bytes

PARALLEL_TEXT_BYTES = 64 << 20  # text to read before a pool is worth starting
BIG_FILE_BYTES = 4 << 20  # files this large are scanned in the pool, the rest here


def scan_paths(root: Path, rels: Sequence[str], sizes: Sequence[int], workers: int) -> list[Finding]:
    """`scan_folder(root, rels)`, with large text files spread over `workers` processes.

    `sizes` are the files' sizes, in the order of `rels`. Findings come in the order of `rels`.
    """
    candidates = [rel for rel, size in zip(rels, sizes, strict=True) if size >= BIG_FILE_BYTES]
    if workers < 2 or len(candidates) < 2:
        return scan_folder(root, rels)
    text = {rel: n for rel in candidates if (n := text_bytes(root / rel, rel))}
    if len(text) < 2 or sum(text.values()) < PARALLEL_TEXT_BYTES:
        return scan_folder(root, rels)
    try:
        found = _in_pool(root, rels, text, workers)
    except (BrokenProcessPool, OSError):
        # A worker could not start (no /dev/shm for its semaphores, a __main__ that cannot be
        # re-imported by an embedding program): the scan must happen all the same.
        return scan_folder(root, rels)
    return [f for rel in rels for f in found.get(rel, [])]


def _in_pool(root: Path, rels: Sequence[str], text: dict[str, int], workers: int) -> dict[str, list[Finding]]:
    here = [rel for rel in rels if rel not in text]
    # spawn, not fork: this process runs threads (the event loop's, the hash pool's).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(text)), mp_context=context) as pool:
        largest_first = sorted(text, key=text.__getitem__, reverse=True)
        pending = {rel: pool.submit(scan_folder, root, [rel]) for rel in largest_first}
        found = _by_path(scan_folder(root, here))
        for rel, future in pending.items():
            found[rel] = future.result()
    return found


def _by_path(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.path, []).append(f)
    return out

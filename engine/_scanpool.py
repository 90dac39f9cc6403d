"""The push's secret scan over many files, on every core when there is much text (or archives) to read.

The scanner is regex work that holds the GIL, so threads would not speed it up; processes do.
A worker costs ~0.1 s to start, which only pays off with a lot of text: small pushes, and folders
of weights (binary files are read only where formats keep metadata, see _secretfiles), stay in
this process.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from engine._secretarchives import ARCHIVE_STREAM_BYTES, is_archive
from engine._secretfiles import is_binary_file, scan_folder
from engine._secrets import Finding

PARALLEL_TEXT_BYTES = 64 << 20  # text to read before a pool is worth starting
BIG_FILE_BYTES = 4 << 20  # files this large are scanned in the pool, the rest here


def scan_paths(root: Path, rels: Sequence[str], sizes: Sequence[int], workers: int) -> list[Finding]:
    """`scan_folder(root, rels)`, with large text files spread over `workers` processes.

    Only for programs whose `__main__` may be re-imported (spawned workers do): the CLI's.
    `sizes` are the files' sizes, in the order of `rels`. Findings come in the order of `rels`.
    """
    big = [(rel, size) for rel, size in zip(rels, sizes, strict=True) if size >= BIG_FILE_BYTES]
    if workers < 2 or len(big) < 2:
        return scan_folder(root, rels)
    # Sniffed once here: the serial scans below do not open these binary files again.
    binary = {rel for rel, _ in big if is_binary_file(root / rel, rel)}
    # Text is read whole; archives are opened and up to ARCHIVE_STREAM_BYTES of them read
    # (engine/_secretarchives.py): both are regex work worth a process. Other binaries are not.
    heavy = {
        rel: min(size, ARCHIVE_STREAM_BYTES) if is_archive(rel) else size
        for rel, size in big
        if rel not in binary or is_archive(rel)
    }
    if len(heavy) < 2 or sum(heavy.values()) < PARALLEL_TEXT_BYTES:
        return scan_folder(root, rels, binary=binary)
    try:
        found = _in_pool(root, rels, heavy, binary, workers)
    except BrokenProcessPool:
        # A worker could not start or died: the scan must happen all the same.
        return scan_folder(root, rels, binary=binary)
    return [f for rel in rels for f in found.get(rel, [])]


def _in_pool(
    root: Path, rels: Sequence[str], heavy: dict[str, int], binary: set[str], workers: int
) -> dict[str, list[Finding]]:
    here = [rel for rel in rels if rel not in heavy]
    # spawn, not fork: this process runs threads (the event loop's, the hash pool's). Workers
    # ignore Ctrl-C: a worker killed by it would send the parent back to a serial rescan; the
    # parent answers it once the scan is over (it runs on a thread that cannot be cancelled).
    context = multiprocessing.get_context("spawn")
    try:
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(heavy)),
            mp_context=context,
            initializer=signal.signal,
            initargs=(signal.SIGINT, signal.SIG_IGN),
        )
    except OSError as exc:  # no semaphores (a container without /dev/shm)
        raise BrokenProcessPool(str(exc)) from exc
    with pool:
        largest_first = sorted(heavy, key=heavy.__getitem__, reverse=True)
        pending = {rel: pool.submit(scan_folder, root, [rel]) for rel in largest_first}
        # Keyed by the path asked for, not by Finding.path: a file whose name holds a secret is
        # reported under its masked name, and its findings must not get lost on the way back.
        found = {rel: scan_folder(root, [rel], binary=binary) for rel in here}
        for rel, future in pending.items():
            found[rel] = future.result()
    return found

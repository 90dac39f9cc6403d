"""The secret gate in front of push: nothing is sent while the scan finds a credential.

A "clean" verdict is cached per file (size, mtime, inode) and per scanner fingerprint, so a
re-push reads only files that changed since, and a new rule re-reads everything once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import xxhash

from engine._errors import SecretsFoundError
from engine._hashing import HashCache, LocalFile

# The rules, what of each file is read, and what of each archive.
_SCANNER_SOURCES = ("_secrets.py", "_secretfiles.py", "_secretarchives.py")


def scanner_id() -> str:
    """A fingerprint of the secret scanner's rules: a cached "clean" verdict holds only for them."""
    # Read next to this module rather than imported: compiling the rules' regexes costs ~14 ms,
    # wasted on a re-push whose files all have cached verdicts.
    here = Path(__file__)
    return xxhash.xxh3_64_hexdigest(b"".join(here.with_name(n).read_bytes() for n in _SCANNER_SOURCES))


def check_secrets(
    folder: Path, files: Sequence[LocalFile], cache: HashCache | None = None, workers: int = 1
) -> None:
    """Raise SecretsFoundError listing `path:line` with masked excerpts when the scan finds any.

    Files that the same scanner found clean before, unchanged since, are not read again. Large
    text files are scanned on up to `workers` processes.
    """
    scanner = scanner_id()
    keyed = [(f.rel, f.key) for f in files if f.path is not None and f.key is not None]
    known = cache.clean_scans([key for _, key in keyed], scanner) if cache else set()
    todo = [(rel, key) for rel, key in keyed if key not in known]
    if not todo:
        return  # and the rules, ~4 ms of regex compilation, are not even loaded
    from engine._scanpool import scan_paths

    findings = scan_paths(folder, [rel for rel, _ in todo], [key.size for _, key in todo], workers)
    if not findings:
        if cache is not None:
            cache.mark_clean((key for _, key in todo), scanner)
        return
    lines = [f.describe() for f in findings]
    shown = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
    noun = "secret" if len(lines) == 1 else "secrets"
    raise SecretsFoundError(
        f"refusing to push: {len(lines)} possible {noun} found: {shown} (remove them or leave them out with --exclude)",
        findings=lines,
    )

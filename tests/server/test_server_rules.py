"""Pure rules: LFS classification, attribute patterns, object ids, byte ranges."""

from __future__ import annotations

import hashlib

import pytest

from engine._wildmatch import path_matches
from engine.server._rules import (
    DEFAULT_GITATTRIBUTES,
    commit_id,
    git_blob_sha1,
    is_lfs,
    iso_date,
    lfs_pointer,
    valid_repo_path,
)
from engine.server._stream import RangeNotSatisfiable, parse_range

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("path", "size", "sample", "attrs", "expected"),
    [
        ("model.safetensors", 10, b"abc", None, True),  # default pattern
        ("deep/dir/w.gguf", 10, b"abc", None, True),
        ("archive.tar.gz", 10, b"abc", None, True),
        ("config.json", 10, b"{}", None, False),
        ("config.json", 10 * MiB, b"{}", None, True),  # size rule
        ("notes.txt", 20, b"a\x00b", None, True),  # binary sample
        ("model.safetensors", 10, b"abc", "*.bin filter=lfs diff=lfs merge=lfs -text\n", False),  # own rules
        ("weights.dat", 10, b"abc", "*.dat filter=lfs diff=lfs merge=lfs -text\n", True),
        ("x.bin", 10, b"abc", "*.bin filter=lfs\nx.bin -filter\n", False),  # last match wins
        ("saved_model/a/b.pb", 10, b"abc", DEFAULT_GITATTRIBUTES, True),
        (".gitattributes", 20 * MiB, b"\x00", None, False),
        ("empty.bin", 0, b"", None, False),
    ],
)
def test_is_lfs(path: str, size: int, sample: bytes, attrs: str | None, expected: bool) -> None:
    assert is_lfs(path, size, sample, attrs) is expected


def test_attribute_patterns_follow_git() -> None:
    assert path_matches("*.bin", "a/b/c.bin")
    assert path_matches("data/*.csv", "data/x.csv")
    assert not path_matches("data/*.csv", "data/sub/x.csv")
    assert path_matches("data/**/*.csv", "data/sub/x.csv")
    assert path_matches("/top.txt", "top.txt")


def test_git_ids_match_git() -> None:
    # `printf 'hello' | git hash-object --stdin`
    assert git_blob_sha1(b"hello") == "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"
    pointer = lfs_pointer(hashlib.sha256(b"x").hexdigest(), 1)
    assert pointer.startswith(b"version https://git-lfs.github.com/spec/v1\noid sha256:")
    assert commit_id([("b", "2"), ("a", "1")]) == commit_id([("a", "1"), ("b", "2")])
    assert commit_id([("a", "1")]) != commit_id([("a", "2")])


def test_iso_date_has_milliseconds_and_z() -> None:
    assert iso_date(0.5) == "1970-01-01T00:00:00.500Z"


@pytest.mark.parametrize(
    "path",
    ["", "/abs", "a//b", "../x", "a/./b", ".git/config", "a\\b", "x/.git/f", ".batuta/f", "x/.batuta",
     "n" * 256, "d/" + "é" * 128 + "/f", "d/" * 3000 + "f",
     "bad\udcff.txt", "a\nb", "tab\there", "del\x7f"],  # not UTF-8; control characters
)  # fmt: skip
def test_invalid_repo_paths(path: str) -> None:
    assert not valid_repo_path(path)


def test_long_but_storable_paths_are_valid() -> None:
    assert valid_repo_path("n" * 255) and valid_repo_path("/".join(["d" * 200] * 15) + "/f")
    assert valid_repo_path(".gitattributes") and valid_repo_path("a/.github/workflows/x.yml")


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 4)
    assert parse_range("bytes=5-", 10) == (5, 9)
    assert parse_range("bytes=0-100", 10) == (0, 9)  # clamped, like hf_transfer's last chunk needs
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=0-1,4-5", 10) is None  # multi-range: served whole
    for bad in ("bytes=10-", "bytes=5-2", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(bad, 10)

"""git's path patterns for .gitignore (pure): what a push's dry run and the server's preupload
answer as ignored."""

from __future__ import annotations

import pytest

from engine._wildmatch import gitignored, path_matches

IGNORE = """
# comments and blank lines count for nothing

*.log
!keep.log
build
cache/
logs/debug
/top-only.txt
**/tmp/**
"""


@pytest.mark.parametrize(
    "path,expected",
    [
        ("train.log", True),
        ("sub/deep/run.log", True),
        ("keep.log", False),  # negated after *.log
        ("build", True),
        ("build/x.txt", True),  # a pattern without `/` names folders too (review repro)
        ("src/build/out/a.o", True),
        ("builds/x.txt", False),
        ("cache/a.bin", True),
        ("cache", False),  # `cache/` names only a folder
        ("logs/debug/1.txt", True),
        ("logs/info/1.txt", False),
        ("top-only.txt", True),
        ("sub/top-only.txt", False),  # a leading `/` anchors to the root
        ("a/tmp/b/c.txt", True),
        ("config.json", False),
    ],
)
def test_gitignore_rules(path: str, expected: bool) -> None:
    assert gitignored(path, IGNORE) is expected


def test_no_gitignore_ignores_nothing() -> None:
    assert not gitignored("a.log", None) and not gitignored("a.log", "")


def test_path_patterns() -> None:
    assert path_matches("*.bin", "a/b/c.bin") and not path_matches("data/*.csv", "data/sub/x.csv")
    assert path_matches("data/**/*.csv", "data/sub/x.csv") and path_matches("/top.txt", "top.txt")

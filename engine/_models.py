"""Value types shared by the engine: repo references and remote file entries."""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from engine._errors import UsageError

RepoType = Literal["model", "dataset", "space"]
REPO_TYPES: tuple[RepoType, ...] = ("model", "dataset", "space")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def parse_repo_type(value: str) -> RepoType:
    """Return `value` as a repo type, accepting plurals; raise UsageError otherwise."""
    v = value.strip().lower().removesuffix("s")
    for t in REPO_TYPES:
        if v == t:
            return t
    raise UsageError(f"unknown asset type '{value}' (expected model, dataset or space)")


def validate_repo_id(repo_id: str, *, legacy: bool = False) -> str:
    """Check `namespace/name` as the Hub does; return it unchanged or raise UsageError.

    With `legacy`, a bare `name` (`gpt2`, `squad`) is accepted too: the Hub still answers such
    old ids with a redirect to their `namespace/name`, and reading them works as it always did.
    """
    parts = repo_id.split("/")
    ok = len(parts) == 2 or (legacy and len(parts) == 1)
    if not ok or not all(_NAME.match(p) for p in parts):
        raise UsageError(f"invalid repo id '{repo_id}' (expected namespace/name)")
    for p in parts:
        if ".." in p or "--" in p or p.endswith((".git", ".")):
            raise UsageError(f"invalid repo id '{repo_id}' (expected namespace/name)")
    return repo_id


def repo_path_ok(path: str) -> bool:
    """Whether a commit may write a file at `path`: relative; no empty, `.`, `..` or `.git` part;
    no backslash; UTF-8 (a lone surrogate is a byte that was not); no control character.

    The rule the Hub applies, shared by push (checked before anything is sent) and the server.
    """
    if not path or path.startswith("/") or "\\" in path:
        return False
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return False
    return all(p not in ("", ".", "..", ".git") for p in path.split("/"))


class RepoRef(NamedTuple):
    """A repository on the Hub: its type and `namespace/name` id."""

    repo_type: RepoType
    repo_id: str

    @classmethod
    def parse(cls, repo_type: str, repo_id: str, *, legacy: bool = False) -> RepoRef:
        """`legacy` admits bare names, for commands that only read (see validate_repo_id)."""
        return cls(parse_repo_type(repo_type), validate_repo_id(repo_id, legacy=legacy))

    @property
    def api_collection(self) -> str:
        return f"{self.repo_type}s"

    @property
    def url_prefix(self) -> str:
        """Prefix of file and web URLs: empty for models, `datasets/` or `spaces/` otherwise."""
        return "" if self.repo_type == "model" else f"{self.repo_type}s/"

    @property
    def cache_folder(self) -> str:
        return f"{self.repo_type}s--{self.repo_id.replace('/', '--')}"


class RemoteFile(NamedTuple):
    """One file of a repo at a commit, as the tree listing describes it."""

    path: str
    size: int
    blob_id: str  # git blob sha1 (of the pointer, for LFS files)
    lfs_sha256: str | None = None
    security_status: str | None = None  # the Hub's own scan verdict when the listing carries one

    @property
    def is_lfs(self) -> bool:
        return self.lfs_sha256 is not None

    @property
    def etag(self) -> str:
        """The name the HF cache gives this file's blob: sha256 for LFS, git sha1 otherwise."""
        return self.lfs_sha256 or self.blob_id

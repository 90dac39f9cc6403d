"""Pre-push secret scanning: credential files by name, credentials in text by content.

`scan_name` and `scan_text` are pure; `scan_folder` adds the reading of files. A text file is
scanned whole, whatever its size, one block at a time, so memory stays bounded; a file whose
first bytes show it is binary (weights, archives, images) is not read further.
Findings carry a masked excerpt, never the secret itself, so they are safe to print or log.
The rules aim for few false positives on ordinary model folders: tokenizer vocabularies,
`"pad_token": "<pad>"` and `hub_token: null` must not trip them.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

SCAN_BLOCK_BYTES = 1024 * 1024
BINARY_SNIFF_BYTES = 8192
# A line longer than a block is scanned in windows that overlap by this much, so a secret up to
# this long that straddles two windows is seen whole by the first and reported once.
_OVERLAP_CHARS = 4096


class Finding(NamedTuple):
    """A suspected credential: where, what kind, and a masked excerpt."""

    path: str
    line: int | None  # 1-based; None when the file name alone is the finding
    kind: str
    excerpt: str

    def describe(self) -> str:
        """One line for the user, e.g. `.env:3: Hugging Face token (hf_Ab…(37 chars))`."""
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.kind}" + (f" ({self.excerpt})" if self.excerpt else "")


def mask(secret: str, show: int = 0) -> str:
    """`hf_Ab…(37 chars)`: at most `show` leading characters, and none of a short secret."""
    shown = secret[:show] if len(secret) >= 16 else ""
    return f"{shown}…({len(secret)} chars)"


# --- by name ---------------------------------------------------------------------------------

_ENV_TEMPLATES = (".example", ".sample", ".template", ".dist", ".defaults")
_SSH_KEYS = frozenset({"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"})
_CREDENTIAL_NAMES = frozenset(
    {"credentials.json", ".netrc", "_netrc", ".npmrc", ".pypirc", ".git-credentials", ".htpasswd"}
)
_KEY_SUFFIXES = (".pem", ".key", ".ppk")
_KEYSTORE_SUFFIXES = (".p12", ".pfx", ".keystore", ".jks")
_CREDENTIAL_PATHS = {
    (".aws", "credentials"): "AWS credentials file",
    (".docker", "config.json"): "Docker credentials file",
    (".kube", "config"): "Kubernetes credentials file",
}


def _is_env_template(name: str) -> bool:
    return name.endswith(_ENV_TEMPLATES)


def scan_name(path: str) -> Finding | None:
    """Flag a file whose name alone says it holds credentials (`.env`, `id_rsa`, `*.pem`…)."""
    parts = path.lower().split("/")
    name = parts[-1]
    kind: str | None = None
    if (name == ".env" or name.startswith(".env.") or name.endswith(".env")) and not _is_env_template(name):
        kind = "env file"
    elif name in _SSH_KEYS:
        kind = "SSH private key file"
    elif name.endswith(_KEY_SUFFIXES):
        kind = "private key file"
    elif name.endswith(_KEYSTORE_SUFFIXES):
        kind = "key store"
    elif name in _CREDENTIAL_NAMES or (name.startswith("client_secret") and name.endswith(".json")):
        kind = "credentials file"
    elif name.startswith("service-account") and name.endswith(".json"):
        kind = "service account key"
    elif len(parts) >= 2:
        kind = _CREDENTIAL_PATHS.get((parts[-2], parts[-1]))
    return Finding(path, None, kind, "") if kind else None


# --- by content ------------------------------------------------------------------------------


def _mixed_case(s: str) -> bool:
    return any(c.islower() for c in s) and any(c.isupper() for c in s)


def _looks_random(s: str) -> bool:
    # Real keys mix cases and digits; identifiers and vocabulary pieces rarely do all three.
    return _mixed_case(s) and any(c.isdigit() for c in s)


def _not_example(s: str) -> bool:
    return "EXAMPLE" not in s.upper()


class _Rule(NamedTuple):
    kind: str
    pattern: re.Pattern[str]
    show: int  # characters of the secret an excerpt may reveal (its well-known prefix, mostly)
    # Literals every match contains. Python's re cannot skip ahead to a pattern that starts with
    # a lookbehind, so it tries every position (~7 MB/s over prose); a substring test runs at
    # over 1 GB/s, and a file without any of these literals cannot match, so the regex is skipped.
    needles: tuple[str, ...]
    check: Callable[[str], bool] | None = None
    reveal: bool = False  # the match is a marker, not the secret (PEM header lines)
    # The needles are looked for in the casefolded text: the pattern is (partly) case-insensitive,
    # and casefolding maps every character re's IGNORECASE matches to a letter onto that letter
    # (`K` (Kelvin) to `k`, `ſ` to `s`).
    folded: bool = False
    group: int | str = 0  # the group holding the secret

    def may_match(self, text: str, folded: str, seen: dict[tuple[str, bool], bool]) -> bool:
        """False when `text` (`folded`: its casefolded form) cannot hold a match."""
        hay = folded if self.folded else text
        gate = _gate(self.needles)
        if (gate, self.folded) not in seen:
            seen[gate, self.folded] = gate in hay
        return seen[gate, self.folded] and any(n in hay for n in self.needles)


@functools.cache
def _gate(needles: tuple[str, ...]) -> str:
    """A character of every needle, rare in prose: looking for one character is a memchr, so
    most files are ruled out for most rules at a fraction of the cost of a substring search."""
    for c in "_-:A":
        if all(c in n for n in needles):
            return c
    raise AssertionError(f"no gate character common to {needles}")


_RULES: tuple[_Rule, ...] = (
    _Rule(
        "private key",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        0,
        ("-----BEGIN ",),
        reveal=True,
    ),
    _Rule(
        "Hugging Face token",
        re.compile(r"(?<![A-Za-z0-9_])(?:hf_|api_org_)[A-Za-z0-9]{30,}(?![A-Za-z0-9])"),
        5,
        ("hf_", "api_org_"),
        _mixed_case,
    ),
    _Rule(
        "AWS access key id",
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        6,
        ("AKIA", "ASIA"),
        _not_example,
    ),
    _Rule(
        "AWS secret access key",
        re.compile(
            r"(?i:aws_secret_access_key)[\"']?[ \t]*[:=][ \t]*[\"']?"
            r"(?P<s>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        2,
        ("aws_secret_access_key",),
        _not_example,
        folded=True,
        group="s",
    ),
    _Rule(
        "GitHub token",
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
        6,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _Rule(
        "Slack token",
        re.compile(r"(?<![A-Za-z0-9])xox[baprs]-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+"),
        6,
        ("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"),
        lambda s: len(s) >= 24,
    ),
    _Rule(
        "Slack webhook URL",
        re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
        len("https://hooks.slack.com/services/T"),
        ("https://hooks.slack.com/services/T",),
    ),
    _Rule(
        "OpenAI-style API key",
        re.compile(
            r"(?<![A-Za-z0-9_-])sk-(?:proj-|svcacct-|admin-|ant-[a-z]+\d\d-)?"
            r"[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])"
        ),
        5,
        ("sk-",),
        _looks_random,
    ),
    _Rule(
        "Google API key",
        re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"),
        6,
        ("AIza",),
    ),
    _Rule(
        "Stripe live key",
        re.compile(r"(?<![A-Za-z0-9])[rs]k_live_[0-9A-Za-z]{24,}"),
        9,
        ("rk_live_", "sk_live_"),
    ),
    _Rule(
        "password in URL",
        re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@'\"]+:(?P<s>[^\s/:@'\"]+)@[A-Za-z0-9.-]+"),
        0,
        ("://",),
        lambda s: not _is_placeholder(s),
        group="s",
    ),
)

# --- env-style assignments (only in env, config and script files) ----------------------------

_CONFIG_SUFFIXES = (".cfg", ".ini", ".conf", ".toml", ".yaml", ".yml", ".properties", ".tfvars")
_SHELL_SUFFIXES = (".sh", ".bash", ".zsh", ".fish", ".ksh", ".bat", ".cmd")
# In code an unquoted right-hand side is an expression (os.environ[...], getpass()), not a value.
_CODE_SUFFIXES = (".py", ".rb", ".js", ".ts", ".ps1")

_ASSIGNMENT = re.compile(
    r"^[ \t]*(?:export[ \t]+|set[ \t]+|ENV[ \t]+|ARG[ \t]+|\$env:)?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)[ \t]*(?::=|=|:)"
    r"[ \t]*(?P<value>[^\r\n]*?)[ \t]*\r?$",
    re.MULTILINE,
)
_PASSWORD_WORDS = frozenset({"PASSWORD", "PASSWD", "PASS", "PWD", "PASSPHRASE"})
_SECRET_ENDINGS = ("SECRET", "SECRET_KEY", "API_KEY", "APIKEY", "ACCESS_KEY", "PRIVATE_KEY", "AUTH_KEY")
_PLACEHOLDER_WORDS = frozenset(
    {"null", "none", "nil", "true", "false", "changeme", "change_me", "change-me", "password", "secret"}
)
_PLACEHOLDER_MARKERS = ("your", "example", "placeholder", "redacted", "dummy", "xxx", "***", "...", "<", "{{")


def _assignment_style(path: str) -> str | None:
    """ "env", "code" or None: whether and how to read `KEY=value` lines in this file."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.startswith(".env") or name.endswith(".env") or name == ".envrc":
        return None if _is_env_template(name) else "env"
    if name.endswith(_CONFIG_SUFFIXES + _SHELL_SUFFIXES) or name == "dockerfile":
        return "env"
    return "code" if name.endswith(_CODE_SUFFIXES) else None


def _secret_key_kind(key: str) -> str | None:
    norm = re.sub(r"[^A-Z0-9]+", "_", key.upper()).strip("_")
    if norm.split("_")[-1] in _PASSWORD_WORDS:
        return "password assignment"
    if norm.endswith(_SECRET_ENDINGS):
        return "secret assignment"
    return None


def _literal(raw: str, style: str) -> str | None:
    """The literal value on the right of `=`, or None if it is an expression or absent."""
    if raw[:1] in ("'", '"'):
        end = raw.find(raw[0], 1)
        return raw[1:end] if end > 0 else raw[1:]
    if style == "code":
        return None
    return raw.split(" #", 1)[0].rstrip(",;").strip()


def _is_placeholder(value: str) -> bool:
    low = value.lower()
    return (
        len(value) < 4
        or low in _PLACEHOLDER_WORDS
        or value[0] in "$%!&*"  # variable references, YAML tags and aliases
        or any(m in low for m in _PLACEHOLDER_MARKERS)
        or len(set(value)) == 1
        or any(c.isspace() for c in value)  # prose, not a credential
        or value.replace(".", "", 1).isdigit()  # counts and ports, e.g. `max_pass: 1000`
    )


def _scan_assignments(path: str, text: str, style: str, taken: set[int]) -> list[tuple[int, Finding]]:
    found: list[tuple[int, Finding]] = []
    for m in _ASSIGNMENT.finditer(text):
        kind = _secret_key_kind(m.group("key"))
        if kind is None:
            continue
        value = _literal(m.group("value"), style)
        if value is None or _is_placeholder(value):
            continue
        line = text.count("\n", 0, m.start()) + 1
        if line not in taken:
            found.append((m.start(), Finding(path, line, kind, f"{m.group('key')}={mask(value, 2)}")))
    return found


def scan_text(path: str, data: bytes) -> list[Finding]:
    """Find credentials in the content of one file, in order of appearance.

    Well-known token shapes are looked for in every file; `PASSWORD=…`-style assignments only in
    env, config and script files, so JSON vocabularies and prose never match them.
    """
    text = data.decode("utf-8", errors="replace")
    found: list[tuple[int, Finding]] = []
    taken: set[int] = set()
    spans: list[tuple[int, int]] = []
    # Only the AWS secret rule needs it, and its needle holds "_" (which casefolding keeps).
    folded = text.casefold() if "_" in text else ""
    seen: dict[tuple[str, bool], bool] = {}
    for rule in _RULES:
        if not rule.may_match(text, folded, seen):
            continue
        for m in rule.pattern.finditer(text):
            secret, (start, end) = m.group(rule.group), m.span(rule.group)
            if rule.check is not None and not rule.check(secret):
                continue
            # One secret, one finding: `https://u:hf_…@host` is a token, not also a URL password.
            if any(start < e and s < end for s, e in spans):
                continue
            spans.append((start, end))
            line = text.count("\n", 0, m.start()) + 1
            taken.add(line)
            excerpt = secret if rule.reveal else mask(secret, rule.show)
            found.append((m.start(), Finding(path, line, rule.kind, excerpt)))
    style = _assignment_style(path)
    if style is not None:
        found += _scan_assignments(path, text, style, taken)
    return [f for _, f in sorted(found, key=lambda pair: pair[0])]


# --- folders ---------------------------------------------------------------------------------

# Weights and archives are never read: they are large, binary, and not where people paste keys.
_SKIP_SUFFIXES = (
    ".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".onnx", ".h5",
    ".msgpack", ".npy", ".npz", ".parquet", ".arrow", ".zip", ".gz", ".tar", ".zst",
)  # fmt: skip


def scan_folder(root: Path, paths: Iterable[str]) -> list[Finding]:
    """Scan the files at `paths` (relative POSIX paths under `root`) by name and by content.

    Content is read only for files of at most MAX_SCAN_BYTES that are not weights or archives,
    and skipped when the first BINARY_SNIFF_BYTES hold a NUL byte. OSError propagates.
    """
    findings: list[Finding] = []
    for rel in paths:
        if (by_name := scan_name(rel)) is not None:
            findings.append(by_name)
        if rel.lower().endswith(_SKIP_SUFFIXES):
            continue
        file = root / rel
        if file.stat().st_size > MAX_SCAN_BYTES:
            continue
        data = file.read_bytes()
        if b"\0" in data[:BINARY_SNIFF_BYTES]:
            continue
        findings += scan_text(rel, data)
    return findings

"""Pre-push secret scanning: credential files by name, credentials in text by content.

`scan_name` and `scan_text` are pure; engine/_secretfiles.py reads files and folders and hands
their text here, a block at a time, so memory stays bounded whatever a file's size.
Findings carry a masked excerpt, never the secret itself, so they are safe to print or log.
The rules aim for few false positives on ordinary model folders: tokenizer vocabularies,
`"pad_token": "<pad>"` and `hub_token: null` must not trip them.
"""

from __future__ import annotations

import bisect
import codecs
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

SCAN_BLOCK_BYTES = 1024 * 1024
BINARY_SNIFF_BYTES = 8192
# A line longer than a block is scanned in windows that overlap by this much, so a secret up to
# this long that straddles two windows is seen whole by the first and reported once.
_OVERLAP_CHARS = 4096


class Finding(NamedTuple):
    """A suspected credential: where, what kind, and a masked excerpt."""

    path: str
    line: int | None  # 1-based; None for the file name, or binary content (the kind gives the byte)
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
# A copy kept by hand or by an editor holds what the original does: `id_rsa.bak` is a private
# key (`id_rsa.pub.bak` is still a public one).
_BACKUP_SUFFIXES = (".bak", ".old", ".orig", ".backup", ".save", "~")
_SSH_KEYS = frozenset({"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk"})
_CREDENTIAL_NAMES = frozenset(
    {
        *("credentials.json", "credentials.yml", "credentials.yaml"),
        *("secrets.json", "secrets.yml", "secrets.yaml", "secrets.toml"),  # .streamlit/secrets.toml
        *(".netrc", "_netrc", ".npmrc", ".pypirc", ".git-credentials", ".htpasswd", ".pgpass"),
    }
)
_KEY_SUFFIXES = (".pem", ".key", ".ppk")
_KEYSTORE_SUFFIXES = (".p12", ".pfx", ".keystore", ".jks")
# Files named like the ones tools keep in a home folder, wherever they are.
_CREDENTIAL_FILES = {
    "credentials": "AWS credentials file",  # the shared-credentials file, in .aws/ or copied out
    "kubeconfig": "Kubernetes credentials file",
    "kubeconfig.yaml": "Kubernetes credentials file",
    "kubeconfig.yml": "Kubernetes credentials file",
    # Common in notebooks and training folders; no content rule knows their keys' shapes.
    "kaggle.json": "Kaggle API key file",
    "application_default_credentials.json": "Google Cloud user credentials file",
    ".s3cfg": "S3 credentials file",
    ".databrickscfg": "Databricks credentials file",
    ".vault-token": "Vault token file",
    ".my.cnf": "MySQL credentials file",
}
_CREDENTIAL_PATHS = {
    (".docker", "config.json"): "Docker credentials file",
    (".kube", "config"): "Kubernetes credentials file",
}


def _is_env_template(name: str) -> bool:
    return name.endswith(_ENV_TEMPLATES)


def _without_backup_suffix(name: str) -> str:
    for suffix in _BACKUP_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def scan_name(path: str) -> Finding | None:
    """Flag a file whose name alone says it holds credentials (`.env`, `id_rsa`, `*.pem`…),
    or a backup copy of one (`id_rsa.bak`, `.netrc~`)."""
    parts = path.lower().split("/")
    parts[-1] = name = _without_backup_suffix(parts[-1])
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
    elif name in _CREDENTIAL_FILES:
        kind = _CREDENTIAL_FILES[name]
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


_AFTER_SCHEME = -1  # `lead` of a rule whose anchor follows a URL scheme of any length


class _Rule(NamedTuple):
    kind: str
    pattern: re.Pattern[str]
    show: int  # characters of the secret an excerpt may reveal (its well-known prefix, mostly)
    # Every match holds a match of one of these, `lead` characters after its own start. Python's re
    # cannot skip ahead to a pattern that starts with a lookbehind or `\b`, so it tries every
    # position (~7 MB/s over prose); an anchor opens with a literal, which it finds at ~1 GB/s,
    # so the pattern is tried only where an anchor puts the start of a match. An anchor also asks
    # for the least a match needs after the literal: `risk-free` and `hf_hub` are common, and each
    # candidate costs a round trip through Python.
    anchors: tuple[re.Pattern[str], ...]
    check: Callable[[str], bool] | None = None
    reveal: bool = False  # the match is a marker, not the secret (PEM header lines)
    group: int | str = 0  # the group holding the secret
    lead: int = 0


def _anchors(*sources: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(source) for source in sources)


def _edge(word: str) -> str:
    """Where a token may start: after no character of the class `word`, or after a `V` that
    starts a line. A protocol 0 pickle writes a str as the opcode `V` and the text, on a line of
    its own (`Vhf_…` in a `training_args.bin` saved so); a letter elsewhere makes it a word."""
    return f"(?:(?<![{word}])|(?<=(?m:^)V))"


_URL_USERINFO = r"[^\s/:@'\"]+"

_RULES: tuple[_Rule, ...] = (
    _Rule(
        "private key",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        0,
        _anchors("-----BEGIN "),
        reveal=True,
    ),
    _Rule(
        "Hugging Face token",
        re.compile(_edge("A-Za-z0-9_") + r"(?:hf_|api_org_)[A-Za-z0-9]{30,}(?![A-Za-z0-9])"),
        5,
        # Two anchors, not one alternation: re scans for an alternation ten times slower.
        _anchors("hf_[A-Za-z0-9]{30}", "api_org_[A-Za-z0-9]{30}"),
        _mixed_case,
    ),
    _Rule(
        "AWS access key id",
        re.compile(_edge("A-Za-z0-9") + r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        6,
        _anchors("A(?:KIA|SIA)[A-Z0-9]{16}"),
        _not_example,
    ),
    _Rule(
        "AWS secret access key",
        re.compile(
            r"(?i:aws_secret_access_key)[\"']?[ \t]*[:=][ \t]*[\"']?"
            r"(?P<s>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        2,
        # From the `_`: a case-insensitive search is slow unless it opens with a caseless literal.
        # Under IGNORECASE each character matches one character (`ſ` an `s`), hence `lead`.
        _anchors("(?i:_secret_access_key)"),
        _not_example,
        group="s",
        lead=len("aws"),
    ),
    _Rule(
        "GitHub token",
        re.compile(_edge("A-Za-z0-9_") + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
        6,
        _anchors("g(?:h[pousr]_[A-Za-z0-9]{36}|ithub_pat_[A-Za-z0-9_]{40})"),
    ),
    _Rule(
        "Slack token",
        re.compile(_edge("A-Za-z0-9") + r"xox[baprs]-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+"),
        6,
        _anchors("xox[baprs]-[A-Za-z0-9]+-[A-Za-z0-9]"),
        lambda s: len(s) >= 24,
    ),
    _Rule(
        "Slack webhook URL",
        re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
        len("https://hooks.slack.com/services/T"),
        _anchors(re.escape("https://hooks.slack.com/services/T")),
    ),
    _Rule(
        "OpenAI-style API key",
        re.compile(
            _edge("A-Za-z0-9_-") + r"sk-(?:proj-|svcacct-|admin-|ant-[a-z]+\d\d-)?"
            r"[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])"
        ),
        5,
        _anchors("sk-[A-Za-z0-9_-]{32}"),  # the optional `proj-` and the like are in the class
        _looks_random,
    ),
    _Rule(
        "Google API key",
        re.compile(_edge("A-Za-z0-9_-") + r"AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"),
        6,
        _anchors("AIza[0-9A-Za-z_-]{35}"),
    ),
    _Rule(
        "Stripe live key",
        re.compile(_edge("A-Za-z0-9") + r"[rs]k_live_[0-9A-Za-z]{24,}"),
        9,
        _anchors("k_live_[0-9A-Za-z]{24}"),
        lead=1,
    ),
    _Rule(
        "password in URL",
        re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@'\"]+:(?P<s>[^\s/:@'\"]+)@[A-Za-z0-9.-]+"),
        0,
        # Not just `://`: a URL without a user and password is common and never a finding.
        _anchors(f"://{_URL_USERINFO}:{_URL_USERINFO}@"),
        lambda s: not _is_placeholder(s),
        group="s",
        lead=_AFTER_SCHEME,
    ),
)

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def _scheme_starts(text: str, colon: int) -> list[int]:
    """Where a URL whose `://` is at `colon` may start: `\\b[A-Za-z]` holds only at the start of
    the run of scheme characters before it, or just after a `+`, `.` or `-` inside that run."""
    start = colon
    while start > 0 and text[start - 1] in _SCHEME_CHARS:
        start -= 1  # runs before successive `://` are disjoint: O(len(text)) in all
    return [start, *(i + 1 for i in range(start, colon) if text[i] in "+.-")]


def _starts(rule: _Rule, text: str) -> list[int]:
    """Every offset where a match of `rule` may start in `text` (and more), in increasing order."""
    starts: list[int] = []
    for anchor in rule.anchors:
        pos = 0
        while m := anchor.search(text, pos):
            pos = m.start() + 1  # not m.end(): anchors may overlap (`AKIAKIA…`)
            if rule.lead == _AFTER_SCHEME:
                starts += _scheme_starts(text, m.start())
            elif m.start() >= rule.lead:
                starts.append(m.start() - rule.lead)
    return sorted(starts)


def _matches(rule: _Rule, text: str) -> Iterator[re.Match[str]]:
    """What `rule.pattern.finditer(text)` yields, trying the pattern only at `_starts`.

    finditer yields the leftmost match at or after the end of the previous one; a match can only
    start at one of `_starts`, and `match(text, pos)` sees the characters before `pos` (for the
    lookbehinds and `\\b`), so trying those in order finds the same matches.
    """
    end = 0
    for start in _starts(rule, text):
        if start >= end and (m := rule.pattern.match(text, start)):
            end = m.end()
            yield m


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
# Every key `_secret_key_kind` accepts holds one of these, in any case (keys are ASCII).
_KEY_WORDS = (b"pass", b"pwd", b"secret", b"key")
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


def _key_lines(text: str) -> set[int]:
    """The starts of the lines of `text` that may hold a secret assignment (and more)."""
    # One byte per character, so offsets are those of `text`; bytes.lower() folds ASCII only and
    # runs ~10x faster than str.lower(), and keys are ASCII.
    low = text.encode("latin-1", "replace").lower()
    starts: set[int] = set()
    for word in _KEY_WORDS:
        i = low.find(word)
        while i >= 0:
            starts.add(low.rfind(b"\n", 0, i) + 1)
            eol = low.find(b"\n", i)
            i = -1 if eol < 0 else low.find(word, eol)
    return starts


class _Hit(NamedTuple):
    start: int  # offset of the match in the text scanned
    kind: str
    excerpt: str
    end: int = -1  # where the secret itself ends (token rules), for masking it in place
    secret_start: int = -1


def _assignment_hits(text: str, style: str, taken: set[int]) -> list[_Hit]:
    hits: list[_Hit] = []
    for start in sorted(_key_lines(text) - taken):
        # A match spans one line and starts where it does, so matching at the start of each line
        # that may hold one finds what finditer would.
        m = _ASSIGNMENT.match(text, start)
        if m is None or (kind := _secret_key_kind(m.group("key"))) is None:
            continue
        value = _literal(m.group("value"), style)
        if value is not None and not _is_placeholder(value):
            hits.append(_Hit(start, kind, f"{m.group('key')}={mask(value, 2)}"))
    return hits


def _hits(text: str, style: str | None) -> list[_Hit]:
    """Findings in `text`, in order of appearance."""
    hits: list[_Hit] = []
    spans: list[tuple[int, int]] = []  # of the secrets reported: disjoint, so sorted by start and end
    for rule in _RULES:
        for m in _matches(rule, text):
            secret, (start, end) = m.group(rule.group), m.span(rule.group)
            if rule.check is not None and not rule.check(secret):
                continue
            # One secret, one finding: `https://u:hf_…@host` is a token, not also a URL password.
            # Only the last span starting before `end` can overlap this one.
            i = bisect.bisect_left(spans, (end,))
            if i and spans[i - 1][1] > start:
                continue
            spans.insert(i, (start, end))
            excerpt = secret if rule.reveal else mask(secret, rule.show)
            hits.append(_Hit(m.start(), rule.kind, excerpt, end, start))
    hits.sort(key=lambda hit: hit.start)
    if style is not None:
        # A line with a token on it is reported for the token, not also for its assignment.
        taken: set[int] = set()
        line_start = pos = 0
        for hit in hits:  # each character looked at once, however many hits share a long line
            line_start = text.rfind("\n", pos, hit.start) + 1 or line_start
            pos = hit.start
            taken.add(line_start)
        hits += _assignment_hits(text, style, taken)
        hits.sort(key=lambda hit: hit.start)
    return hits


def _findings(path: str, text: str, hits: Iterable[_Hit], line: int = 1) -> Iterator[Finding]:
    """`hits` (in order) as findings; `line`: the number of the line `text` starts in."""
    pos = 0
    for hit in hits:
        line += text.count("\n", pos, hit.start)
        pos = hit.start
        yield Finding(path, line, hit.kind, hit.excerpt)


def scan_text(path: str, data: bytes) -> list[Finding]:
    """Find credentials in the content of one file, in order of appearance.

    Well-known token shapes are looked for in every file; `PASSWORD=…`-style assignments only in
    env, config and script files, so JSON vocabularies and prose never match them.
    """
    text = data.decode("utf-8", errors="replace")
    return list(_findings(path, text, _hits(text, _assignment_style(path))))


def _scan_stream(path: str, blocks: Iterable[bytes]) -> list[Finding]:
    """`scan_text(path, b"".join(blocks))`, holding about two blocks of text at a time.

    Each window of text ends after its last newline, and what follows goes on to the next one:
    every match lies within one line, so none is cut. A window without a newline is part of a
    long line: hits in all but its last _OVERLAP_CHARS are reported, and the next window starts
    _OVERLAP_CHARS before that point, so a match shorter than that is seen whole, with what
    precedes it, and reported once. (The value of a `KEY=value` on such a line ends where the
    window does: it is still reported, its masked length may fall short.)
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    style = _assignment_style(path)
    findings: list[Finding] = []
    tail = ""  # the text the previous window left to the next
    line = 1  # the number of the line `tail` starts in
    # Hits in `tail` before this offset were reported by the previous window. It is never 0 when
    # `tail` starts inside a line, so a `KEY=value` look-alike at offset 0 there is never reported.
    done = 0
    for block, final in itertools.chain(((b, False) for b in blocks), [(b"", True)]):
        text = tail + decoder.decode(block, final)
        cut = len(text) if final else text.rfind("\n") + 1
        if cut:  # whole lines: no match crosses `cut`
            keep, scanned = cut, text[:cut]
        else:  # all of it inside one long line
            cut = max(len(text) - _OVERLAP_CHARS, 0)
            keep, scanned = max(cut - _OVERLAP_CHARS, 0), text
        hits = [hit for hit in _hits(scanned, style) if done <= hit.start < cut]
        findings += _findings(path, text, hits, line)
        # = text.count("\n", 0, keep), faster: every newline of `text` is in `block` (never in
        # `tail`) and before `keep` (a window that keeps less than it all has no newline).
        line += block.count(b"\n")
        done = cut - keep
        tail = text[keep:]
    return findings


def secrets_in_names(paths: Sequence[str]) -> dict[str, Finding]:
    """Tokens used as file or folder names, which the repo's file list would show to anyone.

    All names are searched as one text (the anchors find nothing in most folders, fast); a name
    with a hit is reported with its secrets masked in place, as the finding's path is printed.
    """
    text = "\n".join(paths)
    starts = list(itertools.accumulate((len(p) + 1 for p in paths), initial=0))
    by_path: dict[int, list[_Hit]] = {}
    for hit in _hits(text, None):
        by_path.setdefault(bisect.bisect_right(starts, hit.start) - 1, []).append(hit)
    out: dict[str, Finding] = {}
    for i, hits in by_path.items():
        shown, at = paths[i], starts[i]
        for hit in sorted(hits, key=lambda h: h.secret_start, reverse=True):  # disjoint spans
            shown = shown[: hit.secret_start - at] + hit.excerpt + shown[hit.end - at :]
        out[paths[i]] = Finding(shown, None, f"{hits[0].kind} in the file name", hits[0].excerpt)
    return out

"""Which files of a repo `pull` downloads: path safety, globs, GGUF quantizations, unsafe weights.

Everything here is pure: it looks at paths, sizes and the Hub's scan verdicts, never at bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import NamedTuple

from engine._errors import ProtocolError, UsageError
from engine._models import RemoteFile

UNSAFE_SUFFIXES = (".bin", ".pkl", ".pt", ".pth", ".ckpt", ".pickle")
SAFE_WEIGHT_SUFFIXES = (".safetensors", ".gguf")
# Other model-weight containers: not unsafe, but they are weights, so a quantization pick drops them.
_OTHER_WEIGHT_SUFFIXES = (".onnx", ".h5", ".msgpack", ".tflite", ".ot", ".npz", ".joblib")
WEIGHT_SUFFIXES = SAFE_WEIGHT_SUFFIXES + UNSAFE_SUFFIXES + _OTHER_WEIGHT_SUFFIXES

_DRIVE = re.compile(r"^[A-Za-z]:")
_GLOB_REASON = "excluded by --include/--exclude"
_PATHS_REASON = "not among the files named"


def first_few(names: Sequence[str], limit: int = 8) -> str:
    """`a, b, c and 5 more`: a list of paths short enough for one line."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def safe_relpath(path: str) -> str:
    """Return `path` if it is a clean relative POSIX path inside the repo; raise ProtocolError otherwise.

    A server (or a hostile mirror) controls these names, and they become local file names, so
    anything that could escape the target folder or mean something else on Windows is refused.
    The Hub never sends such a name: it is the server's fault, not the caller's.
    """
    segments = path.split("/")
    if (
        not path
        or path.startswith("/")
        or _DRIVE.match(path)
        or "\\" in path
        or "\0" in path
        or any(s in ("", ".", "..") for s in segments)
    ):
        raise ProtocolError(f"refusing unsafe path from server: {path!r}")
    return path


def _expand(pattern: str) -> str:
    # As huggingface_hub does: "folder/" means everything below it.
    return pattern + "*" if pattern.endswith("/") else pattern


def match_globs(path: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> bool:
    """True if `path` passes the include/exclude patterns, with huggingface_hub's semantics.

    Patterns are fnmatch-ed against the full repo path (`*` also matches `/`), case-sensitively;
    a pattern ending in `/` matches everything under that folder. No include pattern means
    everything is included; an exclude match always wins.
    """
    if include and not any(fnmatchcase(path, _expand(p)) for p in include):
        return False
    return not any(fnmatchcase(path, _expand(p)) for p in exclude)


# --- safety ----------------------------------------------------------------------------------


class Safety(NamedTuple):
    """Whether a file may be downloaded without `--allow-unsafe`, and why not."""

    safe: bool
    reason: str = ""


SAFE = Safety(True)
_HUB_BLOCKING = ("unsafe", "suspicious")


def safety_of(path: str, hub_status: str | None) -> Safety:
    """Judge one file by the Hub's scan verdict first, then by its suffix.

    hub_status is the Hub's `securityFileStatus` ("safe", "unsafe", "suspicious", "caution" or
    None). "unsafe" and "suspicious" block any file; a pickle-based suffix blocks even when the
    Hub found nothing, because a clean scan does not make unpickling safe.
    """
    status = (hub_status or "").strip().lower()
    if status in _HUB_BLOCKING:
        return Safety(False, f"flagged {status} by the Hub's scan")
    lower = path.lower()
    for suffix in UNSAFE_SUFFIXES:
        if lower.endswith(suffix):
            return Safety(False, f"pickle-based format ({suffix})")
    return SAFE


def is_weight(path: str) -> bool:
    """True for model-weight files (any format, GGUF split parts included)."""
    name = path.rsplit("/", 1)[-1].lower()
    return name.endswith(WEIGHT_SUFFIXES) or is_gguf(path)


# --- GGUF quantizations ----------------------------------------------------------------------

_QUANT_TOKEN = (
    r"Q[2-8]_K(?:_(?:XXS|XS|XL|S|M|L))?"  # k-quants: Q4_K_M, Q3_K_XL (unsloth), Q6_K_L (bartowski)
    r"|Q[1-8]_[01](?:_[48]_[48]|_L)?"  # legacy: Q4_0, Q8_0, ARM repacks Q4_0_4_4
    r"|IQ[1-4]_(?:XXS|XS|XL|NL|S|M)"  # i-quants
    r"|TQ[12]_0"
    r"|B?F(?:16|32)|FP(?:16|32)"
    r"|MXFP4(?:_MOE)?"
)
# Separators around the token are anything but letters and digits ("-", ".", "_", "/"); a token
# must not run on into "_x" either, or "Q4_K_Mx" would read as Q4_K.
_QUANT = re.compile(rf"(?<![A-Za-z0-9])(?:{_QUANT_TOKEN})(?!_?[A-Za-z0-9])", re.IGNORECASE)
_QUANT_FULL = re.compile(rf"(?:{_QUANT_TOKEN})", re.IGNORECASE)
_FLOATS = ("F16", "BF16", "F32")
# "model.gguf", and old-style splits "model.Q6_K.gguf-split-a" / "model.Q8_0.gguf.part1of2".
_GGUF_NAME = re.compile(r"\.gguf(?:$|[-.](?:split|part))", re.IGNORECASE)


def canonical_quantization(name: str) -> str:
    """Upper-case a quantization name; `fp16`/`fp32` become `F16`/`F32` as llama.cpp spells them."""
    upper = name.strip().upper()
    return {"FP16": "F16", "FP32": "F32"}.get(upper, upper)


def is_gguf(path: str) -> bool:
    return _GGUF_NAME.search(path.rsplit("/", 1)[-1]) is not None


def _is_mmproj(path: str) -> bool:
    # Vision projectors ship next to the quantized weights and are needed by every quantization.
    return is_gguf(path) and path.rsplit("/", 1)[-1].lower().startswith("mmproj")


def _quant_in(text: str) -> str | None:
    found = [canonical_quantization(m.group(0)) for m in _QUANT.finditer(text)]
    # "model-f16-Q4_K_M": the float names the source precision, the integer quant the file.
    ints = [q for q in found if q not in _FLOATS]
    pick = ints or found
    return pick[-1] if pick else None


def _folder_quant(path: str, *, exact: bool) -> str | None:
    for folder in reversed(path.split("/")[:-1]):
        if exact:
            if _QUANT_FULL.fullmatch(folder):
                return canonical_quantization(folder)
        elif q := _quant_in(folder):
            return q
    return None


def quantization_of(path: str) -> str | None:
    """The GGUF quantization a file belongs to, in canonical upper case, or None.

    Looks at the file name of GGUF files (`model.Q4_K_M.gguf`, `model-q4_k_m-00001-of-00003.gguf`)
    and then at the folders above any file (`Q4_K_M/model-00001-of-00002.gguf`).
    """
    name = path.rsplit("/", 1)[-1]
    if (m := _GGUF_NAME.search(name)) and (q := _quant_in(name[: m.start()])):
        return q
    return _folder_quant(path, exact=False)


def available_quantizations(paths: Iterable[str]) -> list[str]:
    """Sorted unique quantizations offered by GGUF files and by quantization-named folders."""
    found: set[str] = set()
    for p in paths:
        if is_gguf(p) and not _is_mmproj(p):
            q = quantization_of(p)
        else:
            q = _folder_quant(p, exact=True)
        if q:
            found.add(q)
    return sorted(found)


# --- the selection plan ----------------------------------------------------------------------


class Skipped(NamedTuple):
    """A file left out of a pull, and why."""

    file: RemoteFile
    reason: str


class SelectionResult(NamedTuple):
    """What `pull` downloads (`selected`) and what it leaves out.

    `blocked` are unsafe files refused for lack of `--allow-unsafe`; `filtered_out` are files the
    globs or the quantization left out; `allowed_unsafe` are selected files that are unsafe but
    were let through by `--allow-unsafe`, so the CLI can still warn about them.
    """

    selected: tuple[RemoteFile, ...]
    blocked: tuple[Skipped, ...] = ()
    filtered_out: tuple[Skipped, ...] = ()
    allowed_unsafe: tuple[Skipped, ...] = ()

    @property
    def selected_bytes(self) -> int:
        return sum(f.size for f in self.selected)


def _quantization_filter(files: Sequence[RemoteFile], quantization: str, repo: str) -> str:
    """Validate the requested quantization against the repo and return its canonical name."""
    paths = [f.path for f in files]
    if not any(is_gguf(p) for p in paths):
        raise UsageError(f"no gguf files in {repo}; --quantization '{quantization}' needs a gguf repo")
    available = available_quantizations(paths)
    wanted = canonical_quantization(quantization)
    if wanted not in available:
        offered = ", ".join(available) or "none recognised"
        raise UsageError(f"quantization '{quantization}' not in {repo}; available: {offered}")
    return wanted


def _quantization_reason(path: str, wanted: str) -> str | None:
    """Why `path` is not part of quantization `wanted`, or None to keep it."""
    if is_gguf(path):
        if _is_mmproj(path) or quantization_of(path) == wanted:
            return None
        return f"not quantization {wanted}"
    folder = _folder_quant(path, exact=False)
    if folder is not None:
        return None if folder == wanted else f"inside the {folder} folder, not {wanted}"
    if is_weight(path):
        return f"weights in another format than the {wanted} gguf"
    return None  # config, tokenizer, README, LICENSE...: every quantization needs them


def _describe(items: Sequence[Skipped], limit: int = 8) -> str:
    named = [f"{s.file.path} ({s.reason})" for s in items[:limit]]
    if len(items) > limit:
        named.append(f"and {len(items) - limit} more")
    return ", ".join(named)


def select_files(
    files: Sequence[RemoteFile],
    *,
    repo: str,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    quantization: str | None = None,
    allow_unsafe: bool = False,
    paths: Sequence[str] = (),
) -> SelectionResult:
    """Decide which files of `repo` (a label such as `acme/x`, used in messages) to download.

    Rules, in order: every path must pass `safe_relpath`; with `paths` (exact repo paths, as
    `hf download REPO FILE...` takes them; one ending in `/` names a folder), only those; include/exclude globs; with
    `quantization`, keep only GGUF files of that quantization (plus vision projectors) and
    non-weight files; then unsafe files are blocked unless `allow_unsafe`.

    Raises ProtocolError for an unsafe path from the server; UsageError for a named path the repo
    does not have, a quantization the repo does not offer, a quantization asked of a repo without
    GGUF files, or when blocking removes every weight file.
    """
    for f in files:
        safe_relpath(f.path)
    # A path naming a folder (`sub/`, or `sub` when no file has that name) takes all under it,
    # as `hf download REPO sub/` does.
    present = {f.path for f in files}
    named = {p for p in paths if p in present}
    prefixes = {p: p.rstrip("/") + "/" for p in paths if p not in present}
    folders = tuple(pre for pre in prefixes.values() if pre != "/")
    if unknown := sorted(
        p for p, pre in prefixes.items() if pre == "/" or not any(f.startswith(pre) for f in present)
    ):
        raise UsageError(f"{repo} has no file or folder named {first_few(unknown)}")
    wanted = _quantization_filter(files, quantization, repo) if quantization is not None else None

    selected: list[RemoteFile] = []
    blocked: list[Skipped] = []
    filtered: list[Skipped] = []
    allowed: list[Skipped] = []
    for f in files:
        if paths and f.path not in named and not f.path.startswith(folders):
            filtered.append(Skipped(f, _PATHS_REASON))
            continue
        if not match_globs(f.path, include, exclude):
            filtered.append(Skipped(f, _GLOB_REASON))
            continue
        if wanted is not None and (why := _quantization_reason(f.path, wanted)):
            filtered.append(Skipped(f, why))
            continue
        safety = safety_of(f.path, f.security_status)
        if safety.safe:
            selected.append(f)
        elif allow_unsafe:
            selected.append(f)
            allowed.append(Skipped(f, safety.reason))
        else:
            blocked.append(Skipped(f, safety.reason))

    if files and len(filtered) == len(files) and (include or exclude or quantization is not None):
        # Filters that select nothing are a typo far more often than a wish for an empty pull.
        shown = " ".join(
            [
                *(f"--include '{g}'" for g in include),
                *(f"--exclude '{g}'" for g in exclude),
                *([f"--quantization {quantization}"] if quantization is not None else []),
            ]
        )
        raise UsageError(f"no file of {repo} matches {shown}")
    if any(is_weight(b.file.path) for b in blocked) and not any(is_weight(f.path) for f in selected):
        raise UsageError(
            f"every weight file in {repo} is blocked as unsafe: {_describe(blocked)}; "
            "pass --allow-unsafe to download them anyway"
        )
    return SelectionResult(tuple(selected), tuple(blocked), tuple(filtered), tuple(allowed))

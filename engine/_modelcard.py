"""Model card (README.md) generation for `push`, from what a model folder already holds.

`gather_facts` reads a few small files (config.json, metrics JSON, LICENSE); everything else is
pure. The YAML front matter is written by hand, since PyYAML is not a runtime dependency, with
every scalar either plainly safe or double-quoted and escaped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ATTRIBUTION = "Built with the PAIML stack (batuta)"
_MAX_JSON_BYTES = 8 * 1024 * 1024
_MAX_LICENSE_BYTES = 256 * 1024
_LICENSE_FILES = ("license", "license.md", "license.txt", "licence", "licence.md", "licence.txt", "copying")
METRIC_FILES = ("metrics.json", "eval_results.json", "all_results.json")


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    value: float
    source: str


@dataclass(frozen=True, slots=True)
class CardFacts:
    """Everything the card says, gathered from the folder."""

    license: str
    formats: tuple[str, ...] = ()
    model_type: str | None = None
    architecture: str | None = None
    pipeline_tag: str | None = None
    library_name: str | None = None
    metrics: tuple[Metric, ...] = ()

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.formats, *([self.model_type] if self.model_type else [])]))


# --- licenses --------------------------------------------------------------------------------

# (Hub id, phrases that must all appear). Checked in order against the normalised upper-case
# text; the GNU and Creative Commons families only against the title area, because the GPL-3.0
# text itself mentions the Affero and Lesser licenses.
_TITLE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("agpl-3.0", ("GNU AFFERO GENERAL PUBLIC LICENSE",)),
    ("lgpl-2.1", ("GNU LESSER GENERAL PUBLIC LICENSE", "VERSION 2.1")),
    ("lgpl-3.0", ("GNU LESSER GENERAL PUBLIC LICENSE",)),
    ("gpl-2.0", ("GNU GENERAL PUBLIC LICENSE", "VERSION 2,")),
    ("gpl-3.0", ("GNU GENERAL PUBLIC LICENSE",)),
    ("apache-2.0", ("APACHE LICENSE", "VERSION 2.0")),
    ("mpl-2.0", ("MOZILLA PUBLIC LICENSE", "2.0")),
    ("cc0-1.0", ("CC0 1.0",)),
    ("cc-by-nc-sa-4.0", ("ATTRIBUTION-NONCOMMERCIAL-SHAREALIKE 4.0",)),
    ("cc-by-nc-4.0", ("ATTRIBUTION-NONCOMMERCIAL 4.0",)),
    ("cc-by-sa-4.0", ("ATTRIBUTION-SHAREALIKE 4.0",)),
    ("cc-by-4.0", ("ATTRIBUTION 4.0 INTERNATIONAL",)),
    ("llama2", ("LLAMA 2 COMMUNITY LICENSE",)),
    ("llama3.1", ("LLAMA 3.1 COMMUNITY LICENSE",)),
    ("llama3.2", ("LLAMA 3.2 COMMUNITY LICENSE",)),
    ("llama3", ("LLAMA 3 COMMUNITY LICENSE",)),
)
_BODY_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("apache-2.0", ("LICENSED UNDER THE APACHE LICENSE, VERSION 2.0",)),
    ("bsl-1.0", ("BOOST SOFTWARE LICENSE",)),
    ("unlicense", ("FREE AND UNENCUMBERED SOFTWARE RELEASED INTO THE PUBLIC DOMAIN",)),
    ("mit", ("PERMISSION IS HEREBY GRANTED, FREE OF CHARGE",)),
    ("bsd-3-clause", ("REDISTRIBUTION AND USE IN SOURCE AND BINARY FORMS", "NEITHER THE NAME")),
    ("bsd-2-clause", ("REDISTRIBUTION AND USE IN SOURCE AND BINARY FORMS",)),
    ("isc", ("PERMISSION TO USE, COPY, MODIFY, AND/OR DISTRIBUTE THIS SOFTWARE FOR ANY PURPOSE",)),
)
_TITLE_CHARS = 600


def detect_license(text: str) -> str | None:
    """The Hub license id of a license text (`mit`, `apache-2.0`, `gpl-3.0`…), or None."""
    norm = " ".join(text.upper().split())
    for rules, haystack in ((_TITLE_RULES, norm[:_TITLE_CHARS]), (_BODY_RULES, norm)):
        for hub_id, phrases in rules:
            if all(p in haystack for p in phrases):
                return hub_id
    return None


def _license_from_folder(folder: Path) -> str | None:
    for child in sorted(folder.iterdir()):
        if child.name.lower() in _LICENSE_FILES and child.is_file():
            with child.open("rb") as fh:
                text = fh.read(_MAX_LICENSE_BYTES).decode("utf-8", errors="replace")
            if found := detect_license(text):
                return found
    return None


# --- config.json -----------------------------------------------------------------------------

_SUFFIX_TASKS: tuple[tuple[str, str], ...] = (
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForSequenceClassification", "text-classification"),
    ("ForMaskedLM", "fill-mask"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForImageClassification", "image-classification"),
    ("ForObjectDetection", "object-detection"),
    ("ForSemanticSegmentation", "image-segmentation"),
    ("ForInstanceSegmentation", "image-segmentation"),
    ("ForUniversalSegmentation", "image-segmentation"),
    ("ForDepthEstimation", "depth-estimation"),
    ("ForCTC", "automatic-speech-recognition"),
    ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("ForAudioClassification", "audio-classification"),
    ("ForSeq2SeqLM", "text2text-generation"),
    ("MTModel", "translation"),
    ("ForImageTextToText", "image-text-to-text"),
    ("ForVision2Seq", "image-text-to-text"),
)
_SPEECH_SEQ2SEQ = frozenset({"whisper", "speech_to_text", "speech-encoder-decoder"})
_TEXT_SEQ2SEQ = frozenset(
    {"t5", "mt5", "umt5", "longt5", "bart", "mbart", "pegasus", "bigbird_pegasus", "led", "marian",
     "m2m_100", "nllb-moe", "fsmt", "plbart", "prophetnet", "blenderbot"}
)  # fmt: skip
_VISION_HINTS = ("llava", "vl", "vision", "paligemma", "idefics", "blip", "pixtral", "mllama", "florence")


def pipeline_tag_for(architecture: str, model_type: str | None = None) -> str | None:
    """The Hub pipeline tag an architecture name implies, e.g. `BertForMaskedLM` → `fill-mask`."""
    for suffix, task in _SUFFIX_TASKS:
        if architecture.endswith(suffix):
            return task
    if architecture.endswith("ForConditionalGeneration"):
        # The same head serves translation, speech and vision-language models; the type decides.
        kind = (model_type or "").lower()
        if kind in _SPEECH_SEQ2SEQ:
            return "automatic-speech-recognition"
        if kind in _TEXT_SEQ2SEQ:
            return "text2text-generation"
        if any(h in kind for h in _VISION_HINTS):
            return "image-text-to-text"
    return None


def _read_json(path: Path) -> object:
    """Parsed JSON of a small file; None if missing, too large, or not JSON."""
    if not path.is_file() or path.stat().st_size > _MAX_JSON_BYTES:
        return None
    try:
        return json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return None


# --- metrics ---------------------------------------------------------------------------------


def _numbers(obj: object) -> dict[str, float]:
    if not isinstance(obj, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in obj.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def collect_metrics(folder: Path) -> list[Metric]:
    """Flat numeric metrics from metrics.json, eval_results.json, all_results.json and the last
    numeric entry of trainer_state.json's log_history; the first file to name a metric wins."""
    seen: dict[str, Metric] = {}

    def add(values: dict[str, float], source: str) -> None:
        for name, value in values.items():
            seen.setdefault(name, Metric(name, value, source))

    for name in METRIC_FILES:
        add(_numbers(_read_json(folder / name)), name)
    state = _read_json(folder / "trainer_state.json")
    history = state.get("log_history") if isinstance(state, dict) else None
    if isinstance(history, list):
        for entry in reversed(history):
            if values := _numbers(entry):
                step = values.get("step")
                add(values, "trainer_state.json" + (f" (step {int(step)})" if step is not None else ""))
                break
    return list(seen.values())


# --- facts -----------------------------------------------------------------------------------

_HIDDEN = re.compile(r"(^|/)\.")


def _formats(names: Iterable[str]) -> tuple[str, ...]:
    found: set[str] = set()
    for rel in names:
        low = rel.lower()
        base = low.rsplit("/", 1)[-1]
        if low.endswith(".safetensors"):
            found.add("safetensors")
        elif low.endswith(".gguf"):
            found.add("gguf")
        elif low.endswith(".onnx"):
            found.add("onnx")
        elif low.endswith((".pt", ".pth")) or (base.startswith("pytorch_model") and low.endswith(".bin")):
            found.add("pytorch")
    return tuple(f for f in ("safetensors", "gguf", "onnx", "pytorch") if f in found)


def gather_facts(
    folder: Path, *, license: str | None = None, files: Sequence[str] | None = None
) -> CardFacts:
    """Read what the card needs from `folder`: formats, config.json, license, metrics.

    `files` (repo paths) are what will be pushed; without them the folder is walked.
    """
    if files is None:
        files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    files = [f for f in files if not _HIDDEN.search(f)]
    config = _read_json(folder / "config.json")
    config = config if isinstance(config, dict) else {}
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    archs = config.get("architectures")
    architecture = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    formats = _formats(files)

    pipeline_tag = pipeline_tag_for(architecture, model_type) if architecture else None
    library: str | None = None
    names = set(files)
    if "modules.json" in names or "config_sentence_transformers.json" in names:
        library, pipeline_tag = "sentence-transformers", "sentence-similarity"
    elif "model_index.json" in names:
        library = "diffusers"
    elif architecture:
        library = "transformers"
    elif "adapter_config.json" in names:
        library = "peft"
    elif "gguf" in formats:
        library = "gguf"

    chosen = (license or "").strip().lower() or _license_from_folder(folder) or "other"
    return CardFacts(
        license=chosen,
        formats=formats,
        model_type=model_type,
        architecture=architecture,
        pipeline_tag=pipeline_tag,
        library_name=library,
        metrics=tuple(collect_metrics(folder)),
    )


# --- rendering -------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._/+-]*")
# YAML 1.1 readers (PyYAML among them) take these as booleans or null when unquoted.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar: plain when unambiguous, else double-quoted with escapes."""
    if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    out = ['"']
    for ch in value.encode("utf-8", errors="replace").decode("utf-8"):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ch not in "\ufeff":
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def front_matter(facts: CardFacts) -> str:
    lines = ["---", f"license: {yaml_scalar(facts.license)}"]
    if facts.library_name:
        lines.append(f"library_name: {yaml_scalar(facts.library_name)}")
    if facts.pipeline_tag:
        lines.append(f"pipeline_tag: {yaml_scalar(facts.pipeline_tag)}")
    if facts.tags:
        lines += ["tags:", *(f"- {yaml_scalar(t)}" for t in facts.tags)]
    lines.append("---")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def metrics_table(metrics: Sequence[Metric]) -> str:
    rows = ["| Metric | Value | Source |", "|--------|-------|--------|"]
    rows += [f"| {_cell(m.name)} | {_number(m.value)} | {_cell(m.source)} |" for m in metrics]
    return "\n".join(rows) + "\n"


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def render_model_card(facts: CardFacts, *, repo_id: str) -> str:
    """The README.md text for `repo_id` from already gathered facts."""
    name = repo_id.rsplit("/", 1)[-1]
    desc = f"This repository contains **{name}**"
    if facts.model_type:
        desc += f", a {_code(facts.model_type)} model"
    if facts.architecture:
        desc += f" ({_code(facts.architecture)})"
    if facts.pipeline_tag:
        desc += f" for {facts.pipeline_tag.replace('-', ' ')}"
    desc += "."
    if facts.formats:
        desc += " Weights are stored as " + ", ".join(facts.formats) + "."

    parts = [
        front_matter(facts),
        f"# {name}\n",
        desc + "\n",
        "## Usage\n",
        f"```bash\nbatuta hf pull model {repo_id}\n```\n",
    ]
    if facts.library_name == "transformers" and facts.pipeline_tag:
        parts.append(
            "```python\nfrom transformers import pipeline\n\n"
            f'pipe = pipeline("{facts.pipeline_tag}", model="{repo_id}")\n```\n'
        )
    if facts.metrics:
        parts += ["## Metrics\n", metrics_table(facts.metrics)]
    parts.append(ATTRIBUTION + "\n")
    return "\n".join(parts)


def generate_model_card(
    folder: Path, *, repo_id: str, license: str | None, files: Sequence[str] | None = None
) -> str:
    """README.md text for a model folder about to be pushed to `repo_id`.

    `license` (a Hub license id) wins; otherwise a LICENSE file is recognised, else `other`.
    `files`: the repo paths being pushed (the card describes those; default: the whole folder).
    Only small JSON and license files are read. OSError propagates.
    """
    return render_model_card(gather_facts(folder, license=license, files=files), repo_id=repo_id)

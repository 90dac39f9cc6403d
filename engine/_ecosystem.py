"""The data behind `batuta hf tree`: the HuggingFace ecosystem and the PAIML integration map.

Everything here is constant data plus pure rendering; the CLI prints the strings or dumps the
documents as JSON.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypedDict


@dataclass(frozen=True, slots=True)
class Component:
    """One item of an ecosystem category, e.g. `transformers (Model architectures)`."""

    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Category:
    """A top-level branch of the ecosystem tree."""

    name: str
    components: tuple[Component, ...]


class IntegrationType(Enum):
    """How a PAIML component relates to its HuggingFace counterpart."""

    COMPATIBLE = "compatible"
    ALTERNATIVE = "alternative"
    ORCHESTRATES = "orchestrates"
    USES = "uses"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def label(self) -> str:
        return self.name

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_SYMBOLS = {
    IntegrationType.COMPATIBLE: "✓",
    IntegrationType.ALTERNATIVE: "⚡",
    IntegrationType.ORCHESTRATES: "🔄",
    IntegrationType.USES: "📦",
}
_DESCRIPTIONS = {
    IntegrationType.COMPATIBLE: "Interoperates with HF format/API",
    IntegrationType.ALTERNATIVE: "PAIML native replacement (pure Rust)",
    IntegrationType.ORCHESTRATES: "PAIML wraps/orchestrates HF",
    IntegrationType.USES: "PAIML uses HF library directly",
}


@dataclass(frozen=True, slots=True)
class IntegrationMapping:
    """One PAIML component paired with one HuggingFace counterpart."""

    category: str
    paiml: str
    huggingface: str
    type: IntegrationType


@dataclass(frozen=True, slots=True)
class LegendEntry:
    type: IntegrationType
    symbol: str
    label: str
    description: str


LEGEND: tuple[LegendEntry, ...] = tuple(
    LegendEntry(t, t.symbol, t.label, t.description) for t in IntegrationType
)

ECOSYSTEM_TITLE = "HuggingFace Ecosystem"
INTEGRATION_TITLE = "PAIML ↔ HuggingFace Integration Map"


def _category(name: str, *components: tuple[str, str]) -> Category:
    return Category(name, tuple(Component(n, d) for n, d in components))


_ECOSYSTEM: tuple[Category, ...] = (
    _category(
        "hub",
        ("models", "700K+ models"),
        ("datasets", "100K+ datasets"),
        ("spaces", "300K+ spaces"),
        ("papers", "Daily papers with linked artifacts"),
    ),
    _category(
        "libraries",
        ("transformers", "Model architectures"),
        ("diffusers", "Diffusion models"),
        ("accelerate", "Distributed training"),
        ("peft", "Parameter-efficient fine-tuning"),
        ("trl", "RLHF and preference tuning"),
        ("optimum", "Hardware-optimized inference"),
        ("datasets", "Dataset loading and processing"),
        ("tokenizers", "Fast tokenization"),
        ("safetensors", "Safe tensor serialization"),
        ("huggingface_hub", "Hub client library"),
    ),
    _category(
        "inference",
        ("text-generation-inference", "TGI: production LLM serving"),
        ("text-embeddings-inference", "TEI: embedding and reranker serving"),
        ("inference-endpoints", "Managed dedicated deployments"),
        ("inference-providers", "Serverless API across providers"),
        ("transformers.js", "In-browser inference"),
        ("candle", "Minimalist ML framework in Rust"),
    ),
    _category(
        "training",
        ("autotrain", "No-code training"),
        ("trl", "SFT, DPO and GRPO trainers"),
        ("accelerate", "Multi-GPU and multi-node training"),
        ("peft", "LoRA and adapters"),
        ("nanotron", "3D-parallel LLM pretraining"),
        ("evaluate", "Metrics and evaluation"),
    ),
    _category(
        "formats",
        ("safetensors", "Safe, zero-copy tensors"),
        ("gguf", "Quantized llama.cpp models"),
        ("onnx", "Portable inference graphs"),
        ("pytorch", "Pickle-based checkpoints (.bin, .pt)"),
        ("parquet", "Columnar dataset files"),
        ("arrow", "In-memory dataset format"),
    ),
    _category(
        "tasks",
        ("text-generation", "Causal language modeling"),
        ("text-classification", "Sentiment, topics, NLI"),
        ("token-classification", "NER and tagging"),
        ("question-answering", "Extractive QA"),
        ("fill-mask", "Masked language modeling"),
        ("summarization", "Condensing documents"),
        ("translation", "Between languages"),
        ("image-classification", "Labeling images"),
        ("automatic-speech-recognition", "Speech to text"),
        ("text-to-image", "Image generation"),
    ),
)

_C, _A, _O, _U = (
    IntegrationType.COMPATIBLE,
    IntegrationType.ALTERNATIVE,
    IntegrationType.ORCHESTRATES,
    IntegrationType.USES,
)

# The seed's table, row for row. A row may name several HF counterparts; each one becomes its
# own mapping, which is how the seed arrives at 28.
_INTEGRATION_ROWS: tuple[tuple[str, str, tuple[str, ...], IntegrationType], ...] = (
    ("Formats", ".apr", ("pickle/.joblib", "safetensors", "gguf"), _A),
    ("Formats", "realizar/gguf", ("gguf",), _C),
    ("Formats", "realizar/safetensors", ("safetensors",), _C),
    ("Data Formats", ".ald", ("parquet/arrow", "json/csv"), _A),
    ("Hub Access", "aprender/hf_hub", ("huggingface_hub",), _U),
    ("Hub Access", "batuta/hf", ("huggingface_hub",), _O),
    ("Registry", "pacha", ("HF Hub registry", "MLflow/W&B"), _A),
    ("Inference", "realizar", ("transformers", "TGI"), _A),
    ("Inference", "realizar/moe", ("optimum",), _A),
    ("Classical ML", "aprender", ("sklearn", "xgboost/lightgbm"), _A),
    ("Deep Learning", "entrenar", ("PyTorch training",), _A),
    ("Deep Learning", "alimentar", ("datasets",), _A),
    ("Compute", "trueno", ("NumPy/PyTorch tensors",), _A),
    ("Compute", "repartir", ("accelerate",), _A),
    ("Tokenization", "realizar/tokenizer", ("tokenizers",), _C),
    ("Tokenization", "trueno-rag", ("tokenizers",), _C),
    ("Apps", "presentar", ("gradio",), _A),
    ("Apps", "trueno-viz", ("visualization",), _A),
    ("Quality", "certeza", ("evaluate",), _A),
    ("MCP Tooling", "pforge", ("LangChain Tools",), _A),
    ("MCP Tooling", "pmat", ("code analysis tools",), _A),
    ("MCP Tooling", "pmcp", ("mcp-sdk",), _A),
)

_INTEGRATION: tuple[IntegrationMapping, ...] = tuple(
    IntegrationMapping(category, paiml, hf, kind)
    for category, paiml, counterparts, kind in _INTEGRATION_ROWS
    for hf in counterparts
)


def ecosystem() -> tuple[Category, ...]:
    """The six categories of the HuggingFace ecosystem, in display order."""
    return _ECOSYSTEM


def integration_map() -> tuple[IntegrationMapping, ...]:
    """Every PAIML ↔ HuggingFace mapping, one per HF counterpart, grouped by category in order."""
    return _INTEGRATION


def integration_categories(
    mappings: Sequence[IntegrationMapping] | None = None,
) -> list[tuple[str, list[IntegrationMapping]]]:
    """Group mappings by category, keeping first-seen category order."""
    groups: dict[str, list[IntegrationMapping]] = {}
    for m in integration_map() if mappings is None else mappings:
        groups.setdefault(m.category, []).append(m)
    return list(groups.items())


def integration_summary(mappings: Sequence[IntegrationMapping] | None = None) -> dict[str, int]:
    """Count mappings per type, every type present (zero when unused), in legend order."""
    items = integration_map() if mappings is None else mappings
    return {t.value: sum(1 for m in items if m.type is t) for t in IntegrationType}


# --- JSON documents ------------------------------------------------------------------------


class ComponentDoc(TypedDict):
    name: str
    description: str


class CategoryDoc(TypedDict):
    name: str
    components: list[ComponentDoc]


class EcosystemDocument(TypedDict):
    title: str
    categories: list[CategoryDoc]


class MappingDoc(TypedDict):
    paiml: str
    huggingface: str
    type: str
    symbol: str


class MappingCategoryDoc(TypedDict):
    name: str
    mappings: list[MappingDoc]


class LegendDoc(TypedDict):
    type: str
    symbol: str
    label: str
    description: str


class IntegrationDocument(TypedDict):
    title: str
    total: int
    categories: list[MappingCategoryDoc]
    legend: list[LegendDoc]
    summary: dict[str, int]


def ecosystem_document() -> EcosystemDocument:
    """The ecosystem tree as a JSON-ready document.

    Schema:
    `{"title": str, "categories": [{"name": str, "components": [{"name": str, "description": str}]}]}`
    """
    return {
        "title": ECOSYSTEM_TITLE,
        "categories": [
            {
                "name": c.name,
                "components": [{"name": x.name, "description": x.description} for x in c.components],
            }
            for c in ecosystem()
        ],
    }


def integration_document() -> IntegrationDocument:
    """The integration map as a JSON-ready document.

    Schema:
    ```
    {"title": str, "total": int,
     "categories": [{"name": str, "mappings": [{"paiml", "huggingface", "type", "symbol"}]}],
     "legend": [{"type", "symbol", "label", "description"}],
     "summary": {"compatible": int, "alternative": int, "orchestrates": int, "uses": int}}
    ```
    `type` is the lowercase type name; `total` equals the sum of `summary`.
    """
    mappings = integration_map()
    return {
        "title": INTEGRATION_TITLE,
        "total": len(mappings),
        "categories": [
            {
                "name": name,
                "mappings": [
                    {
                        "paiml": m.paiml,
                        "huggingface": m.huggingface,
                        "type": m.type.value,
                        "symbol": m.type.symbol,
                    }
                    for m in group
                ],
            }
            for name, group in integration_categories(mappings)
        ],
        "legend": [
            {"type": e.type.value, "symbol": e.symbol, "label": e.label, "description": e.description}
            for e in LEGEND
        ],
        "summary": integration_summary(mappings),
    }


# --- ASCII rendering -----------------------------------------------------------------------

_TEE, _ELBOW, _PIPE, _SPACE = "├── ", "└── ", "│   ", "    "
# The seed's example aligns descriptions at column 15 of the component name.
_MIN_NAME_WIDTH = 14


def _symbol_cell(symbol: str) -> str:
    """Pad narrow symbols (✓) to the two columns that emoji (⚡ 🔄 📦) take in a terminal."""
    return symbol if unicodedata.east_asian_width(symbol[0]) == "W" else symbol + " "


def _branch(is_last: bool) -> tuple[str, str]:
    """The connector for a node and the indent its children inherit."""
    return (_ELBOW, _SPACE) if is_last else (_TEE, _PIPE)


def render_ascii_tree(categories: Sequence[Category] | None = None) -> str:
    """Draw the ecosystem as a box-drawing tree headed `HuggingFace Ecosystem (6 categories)`."""
    cats = ecosystem() if categories is None else categories
    lines = [f"{ECOSYSTEM_TITLE} ({len(cats)} categories)"]
    for i, cat in enumerate(cats):
        connector, indent = _branch(i == len(cats) - 1)
        lines.append(f"{connector}{cat.name}")
        width = max([_MIN_NAME_WIDTH, *(len(c.name) for c in cat.components)])
        for j, comp in enumerate(cat.components):
            leaf, _ = _branch(j == len(cat.components) - 1)
            lines.append(f"{indent}{leaf}{comp.name.ljust(width)} ({comp.description})")
    return "\n".join(lines) + "\n"


def summary_line(mappings: Sequence[IntegrationMapping] | None = None) -> str:
    """E.g. `28 mappings: 4 compatible, 22 alternative, 1 orchestrates, 1 uses`."""
    items = integration_map() if mappings is None else mappings
    counts = integration_summary(items)
    return f"{len(items)} mappings: " + ", ".join(f"{n} {name}" for name, n in counts.items())


def render_ascii_integration(mappings: Sequence[IntegrationMapping] | None = None) -> str:
    """Draw the integration map grouped by category, then the legend and a computed summary line."""
    items = integration_map() if mappings is None else mappings
    groups = integration_categories(items)
    lines = [f"{INTEGRATION_TITLE} ({len(items)} mappings)"]
    width = max([0, *(len(m.paiml) for m in items)])
    for i, (name, group) in enumerate(groups):
        connector, indent = _branch(i == len(groups) - 1)
        lines.append(f"{connector}{name}")
        for j, m in enumerate(group):
            leaf, _ = _branch(j == len(group) - 1)
            lines.append(
                f"{indent}{leaf}{_symbol_cell(m.type.symbol)} {m.paiml.ljust(width)} → {m.huggingface}"
            )
    label_width = max(len(e.label) for e in LEGEND)
    lines += ["", "Legend:"]
    lines += [f"  {_symbol_cell(e.symbol)} {e.label.ljust(label_width)} - {e.description}" for e in LEGEND]
    lines += ["", summary_line(items)]
    return "\n".join(lines) + "\n"

from __future__ import annotations

import json
import re

from engine._ecosystem import (
    LEGEND,
    Category,
    Component,
    IntegrationMapping,
    IntegrationType,
    ecosystem,
    ecosystem_document,
    integration_categories,
    integration_document,
    integration_map,
    integration_summary,
    render_ascii_integration,
    render_ascii_tree,
    summary_line,
)

SEED_CATEGORIES = [
    "Formats",
    "Data Formats",
    "Hub Access",
    "Registry",
    "Inference",
    "Classical ML",
    "Deep Learning",
    "Compute",
    "Tokenization",
    "Apps",
    "Quality",
    "MCP Tooling",
]


def test_ecosystem_has_the_six_categories_in_order() -> None:
    assert [c.name for c in ecosystem()] == ["hub", "libraries", "inference", "training", "formats", "tasks"]


def test_hub_and_libraries_hold_the_required_components() -> None:
    cats = {c.name: c for c in ecosystem()}
    assert [c.name for c in cats["hub"].components] == ["models", "datasets", "spaces", "papers"]
    assert [c.name for c in cats["libraries"].components] == [
        "transformers",
        "diffusers",
        "accelerate",
        "peft",
        "trl",
        "optimum",
        "datasets",
        "tokenizers",
        "safetensors",
        "huggingface_hub",
    ]
    assert Component("models", "700K+ models") in cats["hub"].components
    assert Component("transformers", "Model architectures") in cats["libraries"].components


def test_every_component_has_a_description_and_categories_have_no_duplicates() -> None:
    for cat in ecosystem():
        names = [c.name for c in cat.components]
        assert len(names) == len(set(names)), cat.name
        assert all(c.description.strip() for c in cat.components)
    formats = {c.name for c in next(c for c in ecosystem() if c.name == "formats").components}
    assert {"safetensors", "gguf", "onnx", "parquet"} <= formats
    tasks = [c.name for c in next(c for c in ecosystem() if c.name == "tasks").components]
    assert 8 <= len(tasks) <= 12
    assert {"text-generation", "text-classification", "image-classification"} <= set(tasks)
    assert "automatic-speech-recognition" in tasks


def test_integration_map_has_28_mappings_derived_from_the_rows() -> None:
    mappings = integration_map()
    doc = integration_document()
    assert len(mappings) == 28
    assert doc["total"] == 28
    assert doc["total"] == sum(len(c["mappings"]) for c in doc["categories"])
    assert doc["total"] == sum(doc["summary"].values())
    assert len(set(mappings)) == 28  # no accidental duplicate rows


def test_multi_counterpart_rows_are_split_into_one_mapping_each() -> None:
    def counterparts(paiml: str) -> list[str]:
        return [m.huggingface for m in integration_map() if m.paiml == paiml]

    assert counterparts(".apr") == ["pickle/.joblib", "safetensors", "gguf"]
    assert counterparts(".ald") == ["parquet/arrow", "json/csv"]
    assert counterparts("pacha") == ["HF Hub registry", "MLflow/W&B"]
    assert counterparts("aprender") == ["sklearn", "xgboost/lightgbm"]
    assert counterparts("realizar") == ["transformers", "TGI"]


def test_integration_categories_and_types_follow_the_seed() -> None:
    assert [name for name, _ in integration_categories()] == SEED_CATEGORIES
    by_pair = {(m.paiml, m.huggingface): m for m in integration_map()}
    assert by_pair[("aprender/hf_hub", "huggingface_hub")].type is IntegrationType.USES
    assert by_pair[("batuta/hf", "huggingface_hub")].type is IntegrationType.ORCHESTRATES
    assert by_pair[("realizar/gguf", "gguf")].type is IntegrationType.COMPATIBLE
    assert by_pair[("trueno-rag", "tokenizers")].category == "Tokenization"
    assert by_pair[("pmcp", "mcp-sdk")] == IntegrationMapping(
        "MCP Tooling", "pmcp", "mcp-sdk", IntegrationType.ALTERNATIVE
    )
    assert integration_summary() == {"compatible": 4, "alternative": 22, "orchestrates": 1, "uses": 1}


def test_legend_symbols_and_texts() -> None:
    assert [(e.symbol, e.label, e.description) for e in LEGEND] == [
        ("✓", "COMPATIBLE", "Interoperates with HF format/API"),
        ("⚡", "ALTERNATIVE", "PAIML native replacement (pure Rust)"),
        ("🔄", "ORCHESTRATES", "PAIML wraps/orchestrates HF"),
        ("📦", "USES", "PAIML uses HF library directly"),
    ]


def test_ecosystem_document_schema_and_json_round_trip() -> None:
    doc = ecosystem_document()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["title"] == "HuggingFace Ecosystem"
    assert [c["name"] for c in doc["categories"]] == [c.name for c in ecosystem()]
    hub = doc["categories"][0]
    assert hub["components"][0] == {"name": "models", "description": "700K+ models"}
    assert sum(len(c["components"]) for c in doc["categories"]) == sum(len(c.components) for c in ecosystem())


def test_integration_document_schema_and_json_round_trip() -> None:
    doc = integration_document()
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc
    assert set(doc) == {"title", "total", "categories", "legend", "summary"}
    first = doc["categories"][0]
    assert first["name"] == "Formats"
    assert first["mappings"][0] == {
        "paiml": ".apr",
        "huggingface": "pickle/.joblib",
        "type": "alternative",
        "symbol": "⚡",
    }
    assert [e["type"] for e in doc["legend"]] == ["compatible", "alternative", "orchestrates", "uses"]
    assert doc["summary"] == integration_summary()


def test_render_ascii_tree_matches_the_seed_layout() -> None:
    text = render_ascii_tree()
    lines = text.splitlines()
    assert lines[0] == "HuggingFace Ecosystem (6 categories)"
    assert lines[1] == "├── hub"
    assert lines[2] == "│   ├── models         (700K+ models)"
    assert lines[3] == "│   ├── datasets       (100K+ datasets)"
    assert lines[4] == "│   ├── spaces         (300K+ spaces)"
    assert lines[6] == "├── libraries"
    assert lines[7].startswith("│   ├── transformers ") and lines[7].endswith("(Model architectures)")
    assert "└── tasks" in lines
    # The last category's children hang off blank indentation, not a vertical bar.
    last = lines.index("└── tasks")
    assert all(line.startswith("    ") for line in lines[last + 1 :])
    assert lines[-1].startswith("    └── ")
    assert text.endswith("\n")
    assert len(lines) == 1 + sum(1 + len(c.components) for c in ecosystem())


def test_render_ascii_tree_aligns_descriptions_within_a_category() -> None:
    cats = [Category("x", (Component("a", "one"), Component("a-very-long-component-name", "two")))]
    lines = render_ascii_tree(cats).splitlines()
    assert lines == [
        "HuggingFace Ecosystem (1 categories)",
        "└── x",
        "    ├── a                          (one)",
        "    └── a-very-long-component-name (two)",
    ]


def test_render_ascii_integration_groups_legend_and_summary() -> None:
    text = render_ascii_integration()
    lines = text.splitlines()
    assert lines[0] == "PAIML ↔ HuggingFace Integration Map (28 mappings)"
    headers = [line[4:] for line in lines if re.match(r"^[├└]── ", line)]
    assert headers == SEED_CATEGORIES
    assert sum(1 for line in lines if re.match(r"^[│ ]   [├└]── ", line)) == 28
    assert any(re.match(r"^│   ├── ⚡ \.apr +→ pickle/\.joblib$", line) for line in lines)
    assert any(re.match(r"^│   ├── 📦 aprender/hf_hub +→ huggingface_hub$", line) for line in lines)
    assert "Legend:" in lines
    assert "  ✓  COMPATIBLE   - Interoperates with HF format/API" in lines
    assert "  📦 USES         - PAIML uses HF library directly" in lines
    assert lines[-1] == "28 mappings: 4 compatible, 22 alternative, 1 orchestrates, 1 uses"


def test_summary_is_computed_from_the_data_given() -> None:
    subset = [
        IntegrationMapping("A", "x", "y", IntegrationType.USES),
        IntegrationMapping("A", "x", "z", IntegrationType.USES),
        IntegrationMapping("B", "w", "v", IntegrationType.COMPATIBLE),
    ]
    assert summary_line(subset) == "3 mappings: 1 compatible, 0 alternative, 0 orchestrates, 2 uses"
    text = render_ascii_integration(subset)
    assert text.splitlines()[0].endswith("(3 mappings)")
    assert "└── B" in text.splitlines()
    assert "    └── ✓  w → v" in text.splitlines()

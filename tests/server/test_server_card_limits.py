"""README front matter that is huge, oddly shaped or ill-typed: linear parsing, a size cap, typed cardData."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from engine.server._card import with_card
from engine.server._yaml import MAX_FRONT_MATTER_CHARS, front_matter_text, parse_front_matter
from engine.testing import LocalHub
from engine.testing.http import fetch, run_official_client

WRITE_TOKEN = "hf_write_alice"  # registered by the `hub` fixture


def _strict_json(body: bytes) -> Any:
    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(body, parse_constant=refuse)


# Re-scanning a multi-line value from its start for every added line took ~20 s for these (and
# minutes for 256 KiB headers); a single pass takes milliseconds, so the timeout only catches a hang.
@pytest.mark.timeout(10)
def test_long_multi_line_values_parse_in_one_pass() -> None:
    n = 16_000
    flow = "---\ntags: [\n" + " a,\n" * n + "]\nkept: 1\n---\n"
    assert len(flow) < MAX_FRONT_MATTER_CHARS
    assert parse_front_matter(flow) == {"tags": ["a"] * n, "kept": 1}
    quoted = '---\ntitle: "w\n' + " w\n" * n + ' "\nkept: 1\n---\n'
    assert parse_front_matter(quoted) == {"title": " ".join(["w"] * (n + 1)) + " ", "kept": 1}
    unclosed = "---\ntitle: 'x\n" + " w\n" * n + "kept: 1\n---\n"
    assert parse_front_matter(unclosed) == {"kept": 1}
    deep = "---\nd: " + "[" * 5000 + "]" * 5000 + "\nok: " + "[" * 30 + "]" * 30 + "\nkept: 1\n---\n"
    assert parse_front_matter(deep) == {"ok": yaml.safe_load("[" * 30 + "]" * 30), "kept": 1}


@pytest.mark.timeout(10)
def test_a_header_over_the_cap_is_ignored() -> None:
    huge = "---\ntags: [\n" + " a,\n" * 64_000 + "]\n---\n# body\n"  # 256 KiB
    assert front_matter_text(huge) is None and parse_front_matter(huge) == {}
    just_over = "---\nx: '" + "a" * MAX_FRONT_MATTER_CHARS + "'\n---\n"
    assert parse_front_matter(just_over) == {}
    at_cap = "---\nx: " + "a" * (MAX_FRONT_MATTER_CHARS - 3) + "\n---\n"
    assert parse_front_matter(at_cap) == {"x": "a" * (MAX_FRONT_MATTER_CHARS - 3)}


@pytest.mark.parametrize(
    "text",
    [
        "a:\n  -\n  - f\n",
        "a:\n-\n- f\n",
        "k:\n- key:\n- x\n",
        "k:\n  - key:\n  - x\n",
        "k:\n  - key:\n    - x\n  - y\n",
        "k:\n- key:\n  - x\n- y\n",
        "k:\n  - a: 1\n    b:\n  - c\n",
        "tags: [\n  a,\n  b\n]\nx: 1\n",
        "tags: [a, # first\n  b]\nx: 1\n",
        "tags: [it's, \"q\\\"]\", 'a''b]']\nx: 1\n",
        "d: {k: [1,\n  2], j: 'x\n  y'}\n",
        "s: 'it''s\n  here'\nt: \"a\\\\\n  b\"\n",
    ],
)
def test_sequences_and_continued_values_agree_with_pyyaml(text: str) -> None:
    assert parse_front_matter(f"---\n{text}---\n") == yaml.safe_load(text)


def test_card_data_keeps_only_well_typed_values() -> None:
    card: dict[str, object] = {
        "tags": 5,
        "license": ["mit", 3],
        "pipeline_tag": ["text-classification"],
        "library_name": 1.5,
        "x": math.inf,
        "nested": {"a": [1.0, -math.inf, {"b": math.inf, "c": "ok"}], "d": 2},
        "ignore_metadata_errors": True,  # would clash with the client's own keyword
    }
    merged = with_card({}, card)
    assert merged["cardData"] == {"nested": {"a": [1.0, {"c": "ok"}], "d": 2}}
    assert "tags" not in merged and "pipeline_tag" not in merged
    fine = with_card({}, {"tags": "solo", "license": "mit", "language": ["en", 3], "pipeline_tag": "x"})
    assert fine["cardData"] == {
        "tags": ["solo"],
        "license": "mit",
        "language": ["en", 3],
        "pipeline_tag": "x",
    }
    assert with_card({}, {"tags": ["a", 1, None, "b"]})["cardData"] == {"tags": ["a", "b"]}
    assert with_card({}, {"license": ["mit", "apache-2.0"]})["cardData"] == {"license": ["mit", "apache-2.0"]}


BAD_README = "---\ntags: 5\nlicense: [1]\nx: 1e999\ny: [-1e999, 2]\n---\n# card\n"

INFO_SCRIPT = r"""
import json
from huggingface_hub import HfApi
info = HfApi().model_info("acme/odd")
print(json.dumps({"card": info.card_data.to_dict(), "tags": info.tags}))
"""


def test_ill_typed_front_matter_gives_valid_json_the_official_client_reads(
    hub: LocalHub, tmp_path: Path
) -> None:
    hub.add_repo("acme/odd", {"README.md": BAD_README})
    info = _strict_json(fetch("GET", f"{hub.url}/api/models/acme/odd").body)
    assert info["cardData"] == {"y": [2]} and info["tags"] == ["region:us"]
    listed = _strict_json(fetch("GET", f"{hub.url}/api/models?cardData=true").body)
    assert [m["cardData"] for m in listed] == [{"y": [2]}]
    out = cast(dict[str, Any], run_official_client(INFO_SCRIPT, endpoint=hub.url, home=tmp_path / "hf"))
    assert out == {"card": {"y": [2]}, "tags": ["region:us"]}

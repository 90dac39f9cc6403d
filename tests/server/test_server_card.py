"""README front matter: the YAML-subset parser (checked against PyYAML) and its use in info/listing."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from engine.server._card import with_card
from engine.server._yaml import front_matter_text, parse_front_matter
from engine.testing import LocalHub
from engine.testing.http import fetch, run_official_client

WRITE_TOKEN = "hf_write_alice"  # registered by the `hub` fixture

CARD = """---
# a comment line
license: apache-2.0
language:
- en
- fr
tags:
  - foo
  - "bar baz"   # quoted, with a comment
datasets: [imdb, 'glue', "squad:v2"]
pipeline_tag: text-classification
library_name: transformers
base_model: null
inference: false
num_layers: 12
lr: 0.5
thumbnail: https://example.com/x.png
title: "He said \\"hi\\" \\u00e9"
quote: 'it''s'
empty:
description: a long text
  that goes on
widget:
- text: I love this
  example_title: Positive
- text: "Not: at all"
model-index:
- name: tiny
  results:
  - task:
      type: text-classification
      name: Text Classification
    metrics:
    - {type: accuracy, value: 0.91, verified: true}
notes: |
  line one
  # not a comment

  line three
summary: >-
  folded
  text
extra_gated_fields:
  Company: text
  I agree: checkbox
"key with: colon": 1
---
# Tiny model

Body text: not YAML.
"""


def test_parser_agrees_with_pyyaml_on_a_typical_card() -> None:
    expected = yaml.safe_load(front_matter_text(CARD) or "")
    assert parse_front_matter(CARD) == expected
    assert expected["tags"] == ["foo", "bar baz"] and expected["model-index"][0]["name"] == "tiny"


@pytest.mark.parametrize(
    "text",
    [
        "---\n---\nbody",
        "---\nlicense: mit\n...\nbody",
        "\ufeff---\r\nlicense: mit\r\ntags: [a]\r\n---\r\n",
        "---\nnested:\n  a: 1\n  b:\n    c: [x, {y: z}]\n  d: []\n  e: {}\n---\n",
        "---\nlist:\n  - a\n  -\n    k: v\n  - 3\n---\n",
    ],
)
def test_parser_agrees_with_pyyaml_on_edge_shapes(text: str) -> None:
    assert parse_front_matter(text) == (yaml.safe_load(front_matter_text(text) or "") or {})


_WORDS = ["foo", "bar baz", "C#", "a:b", "http://x/y#z", "it's", 'say "hi"', "", " lead", "trail ", "-dash",
          "ünï", "#hash", "x: y", "[br]", "{c}", "null", "true", "12", "1.5", "- item", "a\n\nb", "yes", "~",
          "*star", "&amp", "!bang", "%pc", "|pipe", ">gt", "?q"]  # fmt: skip


def _random_value(rng: random.Random, depth: int) -> object:
    pick = rng.random()
    if depth > 3 or pick < 0.5:
        return rng.choice(
            [*_WORDS, rng.randint(-100, 10**6), round(rng.uniform(-5, 5), 3), True, False, None]
        )
    if pick < 0.75:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["k", "key two", "model-index", "C#", "12"]
    return {f"{rng.choice(keys)}{i}": _random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}


def test_parser_agrees_with_pyyaml_on_what_pyyaml_writes() -> None:
    # Block and mixed styles, both indents, short and long lines (so long strings get folded).
    rng = random.Random(1)
    for _ in range(200):
        doc = {f"key{j}": _random_value(rng, 0) for j in range(rng.randint(1, 6))}
        text = yaml.safe_dump(doc, default_flow_style=rng.choice([False, None]), allow_unicode=True,
                              sort_keys=False, indent=rng.choice([2, 4]), width=rng.choice([40, 1000]))  # fmt: skip
        if text.startswith("{"):
            continue  # a whole document in flow style: never a model card
        assert parse_front_matter(f"---\n{text}---\n") == doc, text


def test_unparsable_parts_drop_their_key_only() -> None:
    text = "---\nlicense: mit\nbase: &b {x: 1}\nalias: *b\nbad: 'unclosed\nflow: [a, b\ntags:\n\t- tab\nkept: yes\n---\n"
    assert parse_front_matter(text) == {"license": "mit", "kept": "yes"}  # YAML 1.2: `yes` is a string
    assert parse_front_matter("no front matter\n---\nlicense: mit\n---\n") == {}
    assert parse_front_matter("---\nlicense: mit\n") == {}  # never closed
    assert parse_front_matter("---\n- a\n- b\n---\n") == {}  # not a mapping


def test_parser_never_raises_on_mangled_cards() -> None:
    rng = random.Random(7)
    noise = [*"\t:[]{}\"'#|>\n&*!?", "- ", "  ", "1" * 5000]
    for _ in range(300):
        chars = list(CARD)
        for _ in range(rng.randint(1, 12)):
            chars.insert(rng.randrange(4, len(chars) - 40), rng.choice(noise))
        assert isinstance(parse_front_matter("".join(chars)), dict)


def test_merge_lets_the_sidecar_win() -> None:
    card = {"license": "apache-2.0", "tags": ["foo"], "pipeline_tag": "text-classification", "x": 1}
    merged = with_card({"tags": ["mine"], "license": "mit"}, card)
    assert merged["tags"] == ["mine"] and merged["license"] == "mit"
    assert merged["pipeline_tag"] == "text-classification"
    assert merged["cardData"] == {**card, "license": "mit"}
    assert with_card({}, {}) == {} and with_card({"license": "mit"}, {})["cardData"] == {"license": "mit"}
    assert with_card({}, {"tags": "solo", "language": ["en", 3]})["tags"] == ["solo"]


README = "---\nlicense: apache-2.0\ntags: [foo]\npipeline_tag: text-classification\n---\n# Card\n"


def test_info_and_listing_read_the_readme_header(hub: LocalHub) -> None:
    hub.add_repo("acme/carded", {"README.md": README, "config.json": "{}"})
    hub.add_repo("acme/plain", {"config.json": "{}"})
    hub.add_repo("acme/carded", {"README.md": "---\ntags: [dev-only]\n---\n"}, revision="dev")
    hub.add_repo("acme/override", {"README.md": README}, meta={"tags": ["mine"], "pipeline_tag": "fill-mask"})
    info = cast(dict[str, Any], fetch("GET", f"{hub.url}/api/models/acme/carded").json())
    assert info["cardData"] == {
        "license": "apache-2.0",
        "tags": ["foo"],
        "pipeline_tag": "text-classification",
    }
    assert info["pipeline_tag"] == "text-classification"
    assert set(info["tags"]) == {"foo", "text-classification", "license:apache-2.0", "region:us"}
    dev = cast(dict[str, Any], fetch("GET", f"{hub.url}/api/models/acme/carded/revision/dev").json())
    assert "dev-only" in dev["tags"] and "foo" not in dev["tags"]
    listed = cast(list[dict[str, Any]], fetch("GET", f"{hub.url}/api/models?filter=foo").json())
    assert [m["id"] for m in listed] == ["acme/carded"]
    by_task = fetch("GET", f"{hub.url}/api/models?pipeline_tag=text-classification&cardData=true").json()
    assert [(m["id"], m["cardData"]["license"]) for m in cast(list[dict[str, Any]], by_task)] == [
        ("acme/carded", "apache-2.0")
    ]
    override = cast(dict[str, Any], fetch("GET", f"{hub.url}/api/models/acme/override").json())
    assert "mine" in override["tags"] and "foo" not in override["tags"]
    assert override["pipeline_tag"] == "fill-mask" and "license:apache-2.0" in override["tags"]
    plain = cast(dict[str, Any], fetch("GET", f"{hub.url}/api/models/acme/plain").json())
    assert "cardData" not in plain and plain["tags"] == ["region:us"]


CARD_SCRIPT = r"""
import json
from huggingface_hub import HfApi
api = HfApi()
api.upload_file(path_or_fileobj=README.encode(), path_in_repo="README.md", repo_id="alice/m")
info = api.model_info("alice/m")
out = {"card": info.card_data.to_dict() if info.card_data else None, "tags": info.tags,
       "pipeline": info.pipeline_tag, "found": [m.id for m in api.list_models(filter="foo")]}
print(json.dumps(out))
"""


def test_official_client_sees_card_metadata_after_uploading_a_readme(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("alice/m", {"a.txt": "a"})
    script = f"README = {README!r}\n" + CARD_SCRIPT
    out = cast(
        dict[str, Any], run_official_client(script, endpoint=hub.url, home=tmp_path / "hf", token=WRITE_TOKEN)
    )
    assert out["card"] == {"license": "apache-2.0", "tags": ["foo"], "pipeline_tag": "text-classification"}
    assert {"foo", "license:apache-2.0", "text-classification"} <= set(out["tags"])
    assert out["pipeline"] == "text-classification" and out["found"] == ["alice/m"]

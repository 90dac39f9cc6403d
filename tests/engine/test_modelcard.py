from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine._modelcard import (
    ATTRIBUTION,
    CardFacts,
    Metric,
    collect_metrics,
    detect_license,
    gather_facts,
    generate_model_card,
    pipeline_tag_for,
    render_model_card,
    yaml_scalar,
)

MIT = """MIT License

Copyright (c) 2024 Acme

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
"""
APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION
"""
BSD3 = """BSD 3-Clause License

Copyright (c) 2024, Acme

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
"""
BSD2 = BSD3.replace("3. Neither the name of the copyright holder nor the names of its", "")
GPL3 = (
    """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
 Everyone is permitted to copy and distribute verbatim copies
"""
    + "filler text " * 200
    + "13. Use with the GNU Affero General Public License.\n"
)
GPL2 = "GNU GENERAL PUBLIC LICENSE\nVersion 2, June 1991\n\nCopyright (C) 1989, 1991 Free Software Foundation"
LGPL3 = (
    "GNU LESSER GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\nincorporates the GNU General Public License"
)
AGPL3 = "GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3, 19 November 2007\n"


def front(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    _, head, _ = card.split("---\n", 2)
    loaded = yaml.safe_load(head)
    assert isinstance(loaded, dict)
    return loaded


def write(folder: Path, files: dict[str, str | bytes | object]) -> Path:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(json.dumps(content))
    return folder


BERT_CONFIG = {
    "architectures": ["BertForSequenceClassification"],
    "model_type": "bert",
    "hidden_size": 768,
    "id2label": {"0": "NEGATIVE", "1": "POSITIVE"},
}


# --- licenses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hub_id"),
    [
        (MIT, "mit"),
        (APACHE, "apache-2.0"),
        ("Licensed under the Apache License, Version 2.0 (the 'License');", "apache-2.0"),
        (BSD3, "bsd-3-clause"),
        (BSD2, "bsd-2-clause"),
        (GPL3, "gpl-3.0"),
        (GPL2, "gpl-2.0"),
        (LGPL3, "lgpl-3.0"),
        ("GNU LESSER GENERAL PUBLIC LICENSE\n Version 2.1, February 1999", "lgpl-2.1"),
        (AGPL3, "agpl-3.0"),
        ("Mozilla Public License Version 2.0\n==================================", "mpl-2.0"),
        ("Attribution 4.0 International\n\n=====\nCreative Commons Corporation", "cc-by-4.0"),
        ("Attribution-NonCommercial 4.0 International", "cc-by-nc-4.0"),
        ("This is free and unencumbered software released into the public domain.", "unlicense"),
        ("LLAMA 2 COMMUNITY LICENSE AGREEMENT\nLlama 2 Version Release Date: July 18, 2023", "llama2"),
        ("All rights reserved. Do not copy.", None),
        ("", None),
    ],
)
def test_detect_license(text: str, hub_id: str | None) -> None:
    assert detect_license(text) == hub_id


def test_license_argument_wins_over_the_file(tmp_path: Path) -> None:
    write(tmp_path, {"LICENSE": MIT})
    assert (
        front(generate_model_card(tmp_path, repo_id="acme/m", license="Apache-2.0"))["license"]
        == "apache-2.0"
    )


@pytest.mark.parametrize("name", ["LICENSE", "LICENSE.md", "LICENSE.txt", "license"])
def test_license_detected_from_a_license_file(tmp_path: Path, name: str) -> None:
    write(tmp_path, {name: BSD3})
    assert front(generate_model_card(tmp_path, repo_id="acme/m", license=None))["license"] == "bsd-3-clause"


def test_license_falls_back_to_other(tmp_path: Path) -> None:
    write(tmp_path, {"LICENSE": "Proprietary. All rights reserved."})
    assert front(generate_model_card(tmp_path, repo_id="acme/m", license=None))["license"] == "other"
    assert front(generate_model_card(tmp_path, repo_id="acme/m", license="  "))["license"] == "other"


# --- pipeline tags and libraries -------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "model_type", "tag"),
    [
        ("BertForSequenceClassification", "bert", "text-classification"),
        ("LlamaForCausalLM", "llama", "text-generation"),
        ("GPT2LMHeadModel", "gpt2", "text-generation"),
        ("RobertaForMaskedLM", "roberta", "fill-mask"),
        ("DistilBertForTokenClassification", None, "token-classification"),
        ("BertForQuestionAnswering", "bert", "question-answering"),
        ("ViTForImageClassification", "vit", "image-classification"),
        ("Wav2Vec2ForCTC", "wav2vec2", "automatic-speech-recognition"),
        ("WhisperForConditionalGeneration", "whisper", "automatic-speech-recognition"),
        ("T5ForConditionalGeneration", "t5", "text2text-generation"),
        ("LlavaForConditionalGeneration", "llava", "image-text-to-text"),
        ("MarianMTModel", "marian", "translation"),
        ("FooForConditionalGeneration", "foo", None),
        ("BertModel", "bert", None),
    ],
)
def test_pipeline_tag_for(arch: str, model_type: str | None, tag: str | None) -> None:
    assert pipeline_tag_for(arch, model_type) == tag


def test_transformers_folder_card(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "config.json": BERT_CONFIG,
            "model.safetensors": b"\x00" * 16,
            "tokenizer.json": {"model": {"vocab": {"token": 1}}},
            "LICENSE": MIT,
            ".git/objects/x.gguf": b"ignored: hidden folders are not the model",
        },
    )
    card = generate_model_card(tmp_path, repo_id="myorg/my-classifier", license=None)
    meta = front(card)
    assert meta == {
        "license": "mit",
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["safetensors", "bert"],
    }
    body = card.split("---\n", 2)[2]
    assert body.startswith("\n# my-classifier\n")
    assert "`bert` model (`BertForSequenceClassification`) for text classification" in body
    assert "batuta hf pull model myorg/my-classifier" in body
    assert 'pipeline("text-classification", model="myorg/my-classifier")' in body
    assert "## Metrics" not in body  # no metric files, no empty table
    assert card.rstrip("\n").splitlines()[-1] == ATTRIBUTION == "Built with the PAIML stack (batuta)"


def test_gguf_folder_card(tmp_path: Path) -> None:
    write(tmp_path, {"model.Q4_K_M.gguf": b"GGUF", "README.txt": "notes"})
    meta = front(generate_model_card(tmp_path, repo_id="acme/tiny-GGUF", license="mit"))
    assert meta == {"license": "mit", "library_name": "gguf", "tags": ["gguf"]}


@pytest.mark.parametrize(
    ("files", "library", "tag"),
    [
        ({"modules.json": [], "config.json": {"architectures": ["BertModel"]}}, "sentence-transformers",
         "sentence-similarity"),
        ({"model_index.json": {"_class_name": "StableDiffusionPipeline"}}, "diffusers", None),
        ({"adapter_config.json": {"peft_type": "LORA"}}, "peft", None),
        ({"weights.npz": b"x"}, None, None),
    ],
)  # fmt: skip
def test_library_detection(
    tmp_path: Path, files: dict[str, object], library: str | None, tag: str | None
) -> None:
    facts = gather_facts(write(tmp_path, files))
    assert facts.library_name == library
    assert facts.pipeline_tag == tag


def test_formats_and_odd_config_values(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "config.json": {"model_type": 7, "architectures": "not-a-list"},
            "onnx/model.onnx": b"x",
            "pytorch_model.bin": b"x",
            "a/b.safetensors": b"x",
        },
    )
    facts = gather_facts(tmp_path)
    assert facts.formats == ("safetensors", "onnx", "pytorch")
    assert facts.model_type is None and facts.architecture is None and facts.library_name is None


def test_broken_json_is_ignored(tmp_path: Path) -> None:
    write(tmp_path, {"config.json": "{not json", "metrics.json": b"\xff\xfe", "eval_results.json": "[1, 2]"})
    facts = gather_facts(tmp_path, license="mit")
    assert facts == CardFacts(license="mit")


# --- metrics ---------------------------------------------------------------------------------

TRAINER_STATE = {
    "best_metric": None,
    "global_step": 300,
    "log_history": [
        {"epoch": 1.0, "learning_rate": 4e-05, "loss": 0.52, "step": 100},
        {"epoch": 3.0, "eval_accuracy": 0.88, "eval_loss": 0.31, "step": 300},
        {
            "epoch": 3.0,
            "step": 300,
            "total_flos": 1.2345e17,
            "train_loss": 0.41234567,
            "train_runtime": 812.5,
        },
        {"note": "no numbers here", "flag": True},
    ],
}


def test_collect_metrics_merges_sources_first_wins(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "metrics.json": {"accuracy": 0.9123, "f1": 0.9, "nested": {"x": 1}, "name": "run-1", "ok": True},
            "eval_results.json": {"eval_loss": 0.25, "accuracy": 0.5},
            "all_results.json": {"eval_loss": 0.99, "train_samples": 25000, "nan": float("nan")},
            "trainer_state.json": TRAINER_STATE,
        },
    )
    got = {m.name: (m.value, m.source) for m in collect_metrics(tmp_path)}
    assert got == {
        "accuracy": (0.9123, "metrics.json"),
        "f1": (0.9, "metrics.json"),
        "eval_loss": (0.25, "eval_results.json"),
        "train_samples": (25000, "all_results.json"),
        "epoch": (3.0, "trainer_state.json (step 300)"),
        "step": (300, "trainer_state.json (step 300)"),
        "total_flos": (1.2345e17, "trainer_state.json (step 300)"),
        "train_loss": (0.41234567, "trainer_state.json (step 300)"),
        "train_runtime": (812.5, "trainer_state.json (step 300)"),
    }


def test_metrics_table_in_the_card(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "config.json": BERT_CONFIG,
            "eval_results.json": {"eval_accuracy": 0.91234567, "eval_samples": 872, "weird|name": 1.5},
            "trainer_state.json": TRAINER_STATE,
        },
    )
    card = generate_model_card(tmp_path, repo_id="acme/m", license="mit")
    assert "## Metrics\n" in card
    table = [line for line in card.splitlines() if line.startswith("|")]
    assert table[0] == "| Metric | Value | Source |"
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table[2:]}
    assert rows["eval_accuracy"] == "| eval_accuracy | 0.912346 | eval_results.json |"
    assert rows["eval_samples"] == "| eval_samples | 872 | eval_results.json |"
    assert rows["train_loss"] == "| train_loss | 0.412346 | trainer_state.json (step 300) |"
    assert rows["total_flos"] == "| total_flos | 1.2345e+17 | trainer_state.json (step 300) |"
    assert "| weird\\|name | 1.5 | eval_results.json |" in table
    assert "eval_loss" not in rows  # only the last numeric log entry counts
    assert card.index("## Metrics") < card.index(ATTRIBUTION)


# --- YAML safety -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["mit", "apache-2.0", "yes", "No", "null", "~", "1.0", "0x1F", "1e5", "a: b", "#tag", "- item", "[x]",
     "{y}", "'q'", '"dq"', "back\\slash", "tab\there", "new\nline", "ünïcødé", "emoji 🤗", "\x07bell",
     "\u2028sep", "@at", "!tag", "*alias", "&anchor", "%dir", "`tick`", "", " lead", "trail "],
)  # fmt: skip
def test_yaml_scalar_round_trips(value: str) -> None:
    assert yaml.safe_load(f"key: {yaml_scalar(value)}\n") == {"key": value}


def test_plain_scalars_stay_plain() -> None:
    assert yaml_scalar("apache-2.0") == "apache-2.0"
    assert yaml_scalar("text-generation") == "text-generation"
    assert yaml_scalar("yes") == '"yes"'


def test_hostile_model_type_keeps_front_matter_valid(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"config.json": {"model_type": 'evil"\n---\nlicense: gpl', "architectures": ["XForCausalLM"]}},
    )
    meta = front(generate_model_card(tmp_path, repo_id="acme/m", license="mit"))
    assert meta["license"] == "mit"
    assert meta["tags"] == ['evil"\n---\nlicense: gpl']
    assert meta["pipeline_tag"] == "text-generation"


def test_render_from_facts_is_pure() -> None:
    facts = CardFacts(license="other", metrics=(Metric("acc", 1.0, "metrics.json"),))
    card = render_model_card(facts, repo_id="acme/plain")
    assert front(card) == {"license": "other"}
    assert "This repository contains **plain**." in card
    assert "| acc | 1 | metrics.json |" in card
    assert "pipeline(" not in card

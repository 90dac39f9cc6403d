from __future__ import annotations

import pytest

from engine._errors import ProtocolError, UsageError
from engine._models import RemoteFile
from engine._select import (
    SAFE_WEIGHT_SUFFIXES,
    UNSAFE_SUFFIXES,
    Safety,
    SelectionResult,
    Skipped,
    available_quantizations,
    canonical_quantization,
    is_weight,
    match_globs,
    quantization_of,
    safe_relpath,
    safety_of,
    select_files,
)


def rf(path: str, size: int = 10, status: str | None = None) -> RemoteFile:
    return RemoteFile(path=path, size=size, blob_id="0" * 40, security_status=status)


def paths(files: tuple[RemoteFile, ...]) -> list[str]:
    return [f.path for f in files]


# --- safe_relpath ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["config.json", "a/b/c.safetensors", "Q4_K_M/model-00001-of-00002.gguf", ".gitattributes", "a..b/c"],
)
def test_safe_relpath_accepts_clean_paths(path: str) -> None:
    assert safe_relpath(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../outside",
        "a/../../b",
        "a/./b",
        ".",
        "a//b",
        "a/",
        "a\\b",
        "..\\windows",
        "C:/Windows/x",
        "c:evil",
        "a\0b",
    ],
)
def test_safe_relpath_refuses_unsafe_paths(path: str) -> None:
    with pytest.raises(ProtocolError) as err:  # the server's fault (exit 8), not the caller's (2)
        safe_relpath(path)
    assert str(err.value) == f"refusing unsafe path from server: {path!r}"


def test_safe_relpath_message_names_the_path() -> None:
    with pytest.raises(ProtocolError, match=r"^refusing unsafe path from server: 'a/\.\./b'$"):
        safe_relpath("a/../b")


# --- globs -----------------------------------------------------------------------------------


def test_match_globs_defaults_to_everything() -> None:
    assert match_globs("anything/at/all.bin")
    assert match_globs("x", include=[], exclude=[])


def test_match_globs_star_crosses_slashes_and_matches_full_path() -> None:
    assert match_globs("onnx/sub/model.onnx", include=["*.onnx"])
    assert not match_globs("model.onnx.json", include=["*.onnx"])
    assert not match_globs("sub/config.json", include=["config.json"])
    assert match_globs("config.json", include=["config.json"])


def test_match_globs_trailing_slash_means_folder() -> None:
    assert match_globs("onnx/model.onnx", include=["onnx/"])
    assert not match_globs("onnx_model.bin", include=["onnx/"])
    assert not match_globs("logs/run1/events", exclude=["logs/"])


def test_match_globs_exclude_wins_and_is_case_sensitive() -> None:
    assert not match_globs("model.safetensors", include=["*.safetensors"], exclude=["model*"])
    assert match_globs("Model.safetensors", include=["*.safetensors"], exclude=["model*"])
    assert match_globs("a.txt", include=["*.md", "*.txt"])


# --- safety ----------------------------------------------------------------------------------


def test_suffix_constants() -> None:
    assert UNSAFE_SUFFIXES == (".bin", ".pkl", ".pt", ".pth", ".ckpt", ".pickle")
    assert SAFE_WEIGHT_SUFFIXES == (".safetensors", ".gguf")


@pytest.mark.parametrize(
    "path", ["model.safetensors", "m.gguf", "config.json", "tokenizer.model", "README.md", "LICENSE"]
)
def test_safe_files(path: str) -> None:
    assert safety_of(path, None) == Safety(True)
    assert safety_of(path, "safe").safe
    assert safety_of(path, "caution").safe


@pytest.mark.parametrize("suffix", UNSAFE_SUFFIXES)
def test_pickle_suffixes_are_unsafe_even_when_the_hub_says_safe(suffix: str) -> None:
    for status in (None, "safe"):
        verdict = safety_of(f"dir/pytorch_model{suffix}", status)
        assert verdict == Safety(False, f"pickle-based format ({suffix})")
    assert not safety_of(f"MODEL{suffix.upper()}", None).safe


@pytest.mark.parametrize("status", ["unsafe", "suspicious", "UNSAFE"])
def test_hub_verdict_blocks_any_file(status: str) -> None:
    verdict = safety_of("model.safetensors", status)
    assert not verdict.safe
    assert verdict.reason == f"flagged {status.lower()} by the Hub's scan"


def test_is_weight() -> None:
    assert is_weight("a/model.safetensors") and is_weight("x.Q6_K.gguf-split-a") and is_weight("m.onnx")
    assert is_weight("pytorch_model.bin")
    assert not is_weight("config.json") and not is_weight("tokenizer.model") and not is_weight("README.md")


# --- quantizations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("model.Q4_K_M.gguf", "Q4_K_M"),
        ("model-Q4_K_M.gguf", "Q4_K_M"),
        ("model-q4_k_m.gguf", "Q4_K_M"),
        ("llama-2-7b.Q5_K_S.gguf", "Q5_K_S"),
        ("Meta-Llama-3-8B-Instruct-IQ2_XXS.gguf", "IQ2_XXS"),
        ("Qwen2.5-7B-Instruct-IQ4_NL.gguf", "IQ4_NL"),
        ("phi-2.Q8_0.gguf", "Q8_0"),
        ("model-Q2_K.gguf", "Q2_K"),
        ("model-Q3_K_L.gguf", "Q3_K_L"),
        ("model-IQ1_S.gguf", "IQ1_S"),
        ("model-IQ3_XS.gguf", "IQ3_XS"),
        ("model-TQ1_0.gguf", "TQ1_0"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("ggml-model-f16.gguf", "F16"),
        ("model-bf16.gguf", "BF16"),
        ("model-fp16.gguf", "F16"),
        ("model.F32.gguf", "F32"),
        ("model-Q4_0_4_4.gguf", "Q4_0_4_4"),
        ("model-Q6_K_L.gguf", "Q6_K_L"),
        ("llama-f16-Q4_K_M.gguf", "Q4_K_M"),
        ("Llama-2-70B.Q6_K.gguf-split-a", "Q6_K"),
        ("Q4_K_M/model-00001-of-00002.gguf", "Q4_K_M"),
        ("UD-Q4_K_XL/DeepSeek-R1-00001-of-00005.gguf", "Q4_K_XL"),
        ("Model-Q8_0/Model-Q8_0-00001-of-00002.gguf", "Q8_0"),
        ("Q4_K_M/README.md", "Q4_K_M"),
        ("model.gguf", None),
        ("config.json", None),
        ("Llama-2-7B-fp16-notes.txt", None),
        ("Qwen2-7B/model.gguf", None),
        ("model-Q4_K_Mx.gguf", None),
    ],
)
def test_quantization_of(path: str, expected: str | None) -> None:
    assert quantization_of(path) == expected


def test_every_part_of_a_split_gguf_has_the_same_quantization() -> None:
    parts = [f"model-Q4_K_M-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    assert {quantization_of(p) for p in parts} == {"Q4_K_M"}


@pytest.mark.parametrize(
    "name",
    "Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_0 Q4_1 Q4_K_S Q4_K_M Q5_0 Q5_1 Q5_K_S Q5_K_M Q6_K Q8_0 F16 BF16 F32 "
    "IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ3_XXS IQ3_XS IQ3_S IQ3_M IQ4_XS IQ4_NL TQ1_0 TQ2_0 "
    "MXFP4".split(),
)
def test_the_whole_family_is_recognised_in_both_cases(name: str) -> None:
    assert quantization_of(f"some-model-7B.{name}.gguf") == name
    assert quantization_of(f"some-model-7B-{name.lower()}.gguf") == name
    assert canonical_quantization(name.lower()) == name


def test_available_quantizations_sorted_unique_from_gguf_and_quant_folders() -> None:
    listing = [
        "README.md",
        "config.json",
        "model.Q8_0.gguf",
        "model.Q4_K_M.gguf",
        "model-q4_k_m-copy.gguf",
        "mmproj-model-f16.gguf",
        "IQ2_XXS/part-00001-of-00002.gguf",
        "IQ2_XXS/part-00002-of-00002.gguf",
        "Q5_K_M/notes.txt",
        "fp16-notes.txt",
        "model.Q6_K.safetensors",
    ]
    assert available_quantizations(listing) == ["IQ2_XXS", "Q4_K_M", "Q5_K_M", "Q8_0"]
    assert available_quantizations(["config.json", "model.safetensors"]) == []


# --- select_files ----------------------------------------------------------------------------

GGUF_REPO = [
    rf("README.md"),
    rf("LICENSE"),
    rf("config.json"),
    rf("tokenizer.json"),
    rf("model.Q4_K_M.gguf", 4000),
    rf("model.Q8_0.gguf", 8000),
    rf("model-Q5_K_M-00001-of-00002.gguf", 3000),
    rf("model-Q5_K_M-00002-of-00002.gguf", 2000),
    rf("IQ2_XXS/model-00001-of-00002.gguf"),
    rf("IQ2_XXS/model-00002-of-00002.gguf"),
    rf("IQ2_XXS/README.md"),
    rf("mmproj-model-f16.gguf", 600),
    rf("model.safetensors", 16000),
]


def test_select_everything_safe_by_default() -> None:
    files = [rf("config.json"), rf("model.safetensors", 100), rf("sub/tokenizer.json", 5)]
    result = select_files(files, repo="acme/x")
    assert result == SelectionResult(tuple(files))
    assert result.selected_bytes == 115


def test_select_with_quantization_keeps_that_quant_and_non_weights() -> None:
    result = select_files(GGUF_REPO, repo="acme/x", quantization="q4_k_m")
    assert paths(result.selected) == [
        "README.md",
        "LICENSE",
        "config.json",
        "tokenizer.json",
        "model.Q4_K_M.gguf",
        "mmproj-model-f16.gguf",
    ]
    dropped = {s.file.path: s.reason for s in result.filtered_out}
    assert dropped["model.Q8_0.gguf"] == "not quantization Q4_K_M"
    assert dropped["IQ2_XXS/model-00001-of-00002.gguf"] == "not quantization Q4_K_M"
    assert dropped["IQ2_XXS/README.md"] == "inside the IQ2_XXS folder, not Q4_K_M"
    assert dropped["model.safetensors"].startswith("weights in another format")
    assert len(result.selected) + len(result.filtered_out) == len(GGUF_REPO)
    assert result.blocked == ()


def test_select_split_quant_keeps_every_part() -> None:
    result = select_files(GGUF_REPO, repo="acme/x", quantization="Q5_K_M")
    ggufs = [p for p in paths(result.selected) if p.endswith(".gguf")]
    assert ggufs == [
        "model-Q5_K_M-00001-of-00002.gguf",
        "model-Q5_K_M-00002-of-00002.gguf",
        "mmproj-model-f16.gguf",
    ]
    assert result.selected_bytes == 3000 + 2000 + 600 + 4 * 10


def test_select_quant_folder_keeps_its_files() -> None:
    result = select_files(GGUF_REPO, repo="acme/x", quantization="iq2_xxs")
    assert "IQ2_XXS/README.md" in paths(result.selected)
    assert "IQ2_XXS/model-00002-of-00002.gguf" in paths(result.selected)
    assert "model.Q4_K_M.gguf" not in paths(result.selected)


def test_unknown_quantization_lists_what_is_available() -> None:
    files = [rf("a.Q4_K_M.gguf"), rf("a.Q8_0.gguf"), rf("config.json")]
    with pytest.raises(UsageError) as err:
        select_files(files, repo="acme/x", quantization="Q9")
    assert str(err.value) == "quantization 'Q9' not in acme/x; available: Q4_K_M, Q8_0"


def test_quantization_on_a_repo_without_gguf_is_refused() -> None:
    with pytest.raises(UsageError, match=r"no gguf files in acme/plain"):
        select_files([rf("model.safetensors")], repo="acme/plain", quantization="Q4_K_M")


def test_globs_apply_before_quantization_and_safety() -> None:
    result = select_files(GGUF_REPO, repo="acme/x", quantization="Q8_0", exclude=["*.md", "LICENSE"])
    assert paths(result.selected) == [
        "config.json",
        "tokenizer.json",
        "model.Q8_0.gguf",
        "mmproj-model-f16.gguf",
    ]
    reasons = {s.file.path: s.reason for s in result.filtered_out}
    assert reasons["README.md"] == "excluded by --include/--exclude"


def test_every_path_is_checked_even_if_excluded() -> None:
    files = [rf("config.json"), rf("../escape.json")]
    with pytest.raises(ProtocolError, match="refusing unsafe path"):
        select_files(files, repo="acme/x", exclude=["*"])


def test_unsafe_files_are_blocked_but_safe_weights_remain() -> None:
    files = [rf("model.safetensors"), rf("pytorch_model.bin"), rf("training_args.bin"), rf("config.json")]
    result = select_files(files, repo="acme/x")
    assert paths(result.selected) == ["model.safetensors", "config.json"]
    assert result.blocked == (
        Skipped(files[1], "pickle-based format (.bin)"),
        Skipped(files[2], "pickle-based format (.bin)"),
    )


def test_hub_flagged_file_is_blocked() -> None:
    files = [rf("a.safetensors"), rf("b.safetensors", status="suspicious"), rf("c.gguf", status="caution")]
    result = select_files(files, repo="acme/x")
    assert paths(result.selected) == ["a.safetensors", "c.gguf"]
    assert [s.reason for s in result.blocked] == ["flagged suspicious by the Hub's scan"]


def test_blocking_every_weight_raises_with_names_and_hint() -> None:
    files = [rf("config.json"), rf("pytorch_model.bin"), rf("model.pt", status="unsafe")]
    with pytest.raises(UsageError) as err:
        select_files(files, repo="acme/old")
    msg = str(err.value)
    assert msg.startswith("every weight file in acme/old is blocked as unsafe: ")
    assert "pytorch_model.bin (pickle-based format (.bin))" in msg
    assert "model.pt (flagged unsafe by the Hub's scan)" in msg
    assert msg.endswith("pass --allow-unsafe to download them anyway")


def test_long_blocked_lists_are_shortened() -> None:
    files = [rf(f"shard-{i}.bin") for i in range(12)]
    with pytest.raises(UsageError, match=r"and 4 more; pass --allow-unsafe"):
        select_files(files, repo="acme/many")


def test_allow_unsafe_selects_and_reports_them() -> None:
    files = [rf("config.json"), rf("pytorch_model.bin"), rf("x.safetensors", status="unsafe")]
    result = select_files(files, repo="acme/old", allow_unsafe=True)
    assert result.selected == tuple(files)
    assert result.blocked == ()
    assert [s.file.path for s in result.allowed_unsafe] == ["pytorch_model.bin", "x.safetensors"]


def test_only_blocked_weights_trigger_the_all_blocked_error() -> None:
    files = [rf("README.md"), rf("cache.pickle", status=None), rf("notes.txt", status="unsafe")]
    # .pickle counts as weights (pickle suffix), so this raises; a flagged non-weight alone does not.
    with pytest.raises(UsageError):
        select_files(files, repo="acme/d")
    result = select_files([rf("README.md"), rf("notes.txt", status="unsafe")], repo="acme/d")
    assert paths(result.selected) == ["README.md"]
    assert paths(tuple(s.file for s in result.blocked)) == ["notes.txt"]


def test_quantization_filter_happens_before_blocking() -> None:
    # The unsafe .bin is dropped by the quantization, so nothing is blocked.
    files = [rf("a.Q4_K_M.gguf"), rf("pytorch_model.bin"), rf("config.json")]
    result = select_files(files, repo="acme/x", quantization="Q4_K_M")
    assert paths(result.selected) == ["a.Q4_K_M.gguf", "config.json"]
    assert result.blocked == ()


def test_named_paths_select_exactly_those_files_and_the_other_rules_still_apply() -> None:
    result = select_files(GGUF_REPO, repo="acme/x", paths=["config.json", "model.Q8_0.gguf"])
    assert [f.path for f in result.selected] == ["config.json", "model.Q8_0.gguf"]
    assert len(result.filtered_out) == len(GGUF_REPO) - 2
    both = select_files(GGUF_REPO, repo="acme/x", paths=["config.json", "LICENSE"], exclude=["LIC*"])
    assert [f.path for f in both.selected] == ["config.json"]
    quant = select_files(
        GGUF_REPO, repo="acme/x", paths=["model.Q8_0.gguf", "README.md"], quantization="Q4_K_M"
    )
    assert [f.path for f in quant.selected] == ["README.md"]
    with pytest.raises(UsageError, match=r"acme/x has no file or folder named configs\.json, nope/x$"):
        select_files(GGUF_REPO, repo="acme/x", paths=["config.json", "nope/x", "configs.json"])
    # Naming an unsafe weight file does not lift the block: --allow-unsafe does.
    unsafe = [rf("config.json"), rf("pytorch_model.bin", 100)]
    with pytest.raises(UsageError, match="--allow-unsafe"):
        select_files(unsafe, repo="acme/x", paths=["pytorch_model.bin"])
    allowed = select_files(unsafe, repo="acme/x", paths=["pytorch_model.bin"], allow_unsafe=True)
    assert [f.path for f in allowed.selected] == ["pytorch_model.bin"]


def test_filters_that_together_select_nothing_are_a_usage_error() -> None:
    with pytest.raises(
        UsageError, match=r"no file of acme/x matches --include 'IQ2_XXS/\*' --quantization Q8_0"
    ):
        select_files(GGUF_REPO, repo="acme/x", include=["IQ2_XXS/*"], quantization="Q8_0")


def test_a_named_folder_selects_everything_under_it() -> None:
    # Parity: `hf download REPO sub/` takes the folder; batuta said "has no file named sub/".
    repo = [rf("config.json"), rf("sub/a.json"), rf("sub/deep/b.txt"), rf("subway.txt"), rf("other/c.json")]
    for arg in ("sub/", "sub"):
        got = select_files(repo, repo="acme/x", paths=[arg, "config.json"])
        assert [f.path for f in got.selected] == ["config.json", "sub/a.json", "sub/deep/b.txt"]
    inside = select_files(repo, repo="acme/x", paths=["sub/"], include=["*.json"])
    assert [f.path for f in inside.selected] == ["sub/a.json"]  # globs still narrow it
    with pytest.raises(UsageError, match="has no file or folder named nothing/"):
        select_files(repo, repo="acme/x", paths=["nothing/"])

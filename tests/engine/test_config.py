from __future__ import annotations

from pathlib import Path

import pytest

from engine import UsageError, load_config


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config({"HOME": str(tmp_path)})
    assert cfg.endpoint == "https://huggingface.co"
    assert not cfg.offline


def test_precedence_matches_the_official_client(tmp_path: Path) -> None:
    home = tmp_path / "hf"
    home.mkdir()
    (home / "token").write_text("  hf_from_file\n")
    env = {"HF_HOME": str(home)}
    assert load_config(env).token == "hf_from_file"
    assert load_config(env).hub_cache == home / "hub"
    env["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy"
    assert load_config(env).token == "hf_legacy"
    env["HF_TOKEN"] = "hf_env"
    assert load_config(env).token == "hf_env"
    assert load_config(env, token="hf_flag").token == "hf_flag"
    env["HF_HUB_CACHE"] = str(tmp_path / "cache")
    assert load_config(env).hub_cache == tmp_path / "cache"
    env["HF_ENDPOINT"] = "http://127.0.0.1:9/"
    assert load_config(env).endpoint == "http://127.0.0.1:9"
    assert load_config(env, endpoint="http://mirror:8080").endpoint == "http://mirror:8080"


def test_token_path_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("\n")
    assert load_config({"HF_HOME": str(tmp_path), "HF_TOKEN_PATH": str(tmp_path / "tok")}).token is None


@pytest.mark.parametrize("value", ["1", "ON", "yes", "True"])
def test_offline_values(value: str, tmp_path: Path) -> None:
    assert load_config({"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": value}).offline


def test_bad_endpoint_and_knobs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid endpoint"):
        load_config({"HF_HOME": str(tmp_path)}, endpoint="ftp://x")
    with pytest.raises(UsageError, match="BATUTA_STALL_TIMEOUT_S"):
        load_config({"HF_HOME": str(tmp_path), "BATUTA_STALL_TIMEOUT_S": "soon"})
    cfg = load_config(
        {"HF_HOME": str(tmp_path), "BATUTA_RETRY_BASE_S": "0.01", "BATUTA_STALL_TIMEOUT_S": "2"}
    )
    assert cfg.retry.base_s == 0.01 and cfg.retry.cap_s == 60.0 and cfg.stall_timeout_s == 2.0

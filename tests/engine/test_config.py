from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import UsageError, load_config
from engine.testing.hub import LocalHub
from tests.conftest import CliResult

Run = Callable[..., CliResult]


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
    assert cfg.retry.max_wait_s == 300.0
    assert load_config({"HF_HOME": str(tmp_path), "BATUTA_RETRY_MAX_WAIT_S": "30"}).retry.max_wait_s == 30.0


def test_huggingface_hub_timeouts_and_progress_variables(tmp_path: Path) -> None:
    home = {"HF_HOME": str(tmp_path)}
    default = load_config(home)
    assert (default.connect_timeout_s, default.stall_timeout_s, default.metadata_timeout_s) == (
        10.0,
        30.0,
        None,
    )
    assert default.progress_bars
    # The download timeout is the connect timeout and the stall watchdog; the etag timeout bounds
    # metadata requests only; BATUTA_STALL_TIMEOUT_S, batuta's own name, wins for the stall.
    cfg = load_config({**home, "HF_HUB_DOWNLOAD_TIMEOUT": "60", "HF_HUB_ETAG_TIMEOUT": "2.5"})
    assert (cfg.connect_timeout_s, cfg.stall_timeout_s, cfg.metadata_timeout_s) == (60.0, 60.0, 2.5)
    cfg = load_config({**home, "HF_HUB_DOWNLOAD_TIMEOUT": "60", "BATUTA_STALL_TIMEOUT_S": "5"})
    assert (cfg.connect_timeout_s, cfg.stall_timeout_s) == (60.0, 5.0)
    # As for the official client, 0 keeps the default.
    assert load_config({**home, "HF_HUB_DOWNLOAD_TIMEOUT": "0", "HF_HUB_ETAG_TIMEOUT": "0"}) == default
    for value, expected in [("1", False), ("TRUE", False), ("on", False), ("0", True), ("no", True)]:
        assert load_config({**home, "HF_HUB_DISABLE_PROGRESS_BARS": value}).progress_bars is expected


@pytest.mark.parametrize("name", ["HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT", "BATUTA_STALL_TIMEOUT_S"])
@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_timeout_variable_is_a_usage_error(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(UsageError, match=f"^{name} must be (a number of seconds|positive), got '{value}'$"):
        load_config({"HF_HOME": str(tmp_path), name: value})


def test_a_bad_timeout_variable_is_one_line_and_exit_2(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "10s")
    r = run_cli("--endpoint", "http://127.0.0.1:9", "hf", "pull", "model", "acme/tiny")
    assert (
        r.exit_code == 2 and r.stderr == "error: HF_HUB_ETAG_TIMEOUT must be a number of seconds, got '10s'\n"
    )


def test_offline_from_either_variable_as_the_official_client_reads_them(tmp_path: Path) -> None:
    home = {"HF_HOME": str(tmp_path)}
    # HF_HUB_OFFLINE, when set to anything, decides alone: "0" means online whatever
    # TRANSFORMERS_OFFLINE says (huggingface_hub/constants.py, `HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE`).
    assert not load_config(home | {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "yes"}).offline
    assert load_config(home | {"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "yes"}).offline
    assert load_config(home | {"TRANSFORMERS_OFFLINE": "1"}).offline
    assert not load_config(home | {"HF_HUB_OFFLINE": "1 "}).offline  # no stripping there either


OFFLINE_CASES = [
    (hub, transformers)
    for hub in (None, "", "0", "1", "yes", "ON", "true", "false", "no", " 1", "auto", "2")
    for transformers in (None, "", "0", "1", "YES", "off")
]


def test_offline_matches_huggingface_hub_for_every_combination(tmp_path: Path) -> None:
    # The official client decides once, at import: ask it in a child process, case by case.
    script = textwrap.dedent(
        """
        import importlib, json, os, sys
        import huggingface_hub.constants as c
        out = []
        for hub, transformers in json.loads(sys.argv[1]):
            for name, value in (("HF_HUB_OFFLINE", hub), ("TRANSFORMERS_OFFLINE", transformers)):
                os.environ.pop(name, None)
                if value is not None:
                    os.environ[name] = value
            out.append(importlib.reload(c).HF_HUB_OFFLINE)
        print(json.dumps(out))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(OFFLINE_CASES)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    official = json.loads(done.stdout)
    for (hub, transformers), expected in zip(OFFLINE_CASES, official, strict=True):
        env_case = {"HF_HOME": str(tmp_path)}
        if hub is not None:
            env_case["HF_HUB_OFFLINE"] = hub
        if transformers is not None:
            env_case["TRANSFORMERS_OFFLINE"] = transformers
        assert load_config(env_case).offline is expected, (hub, transformers)


def test_hf_hub_offline_0_keeps_the_cli_online(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")
    with LocalHub.in_thread() as hub:
        hub.add_repo("acme/tiny", {"config.json": b"{}"})
        r = run_cli("--endpoint", hub.url, "hf", "info", "model", "acme/tiny", "--json")
        assert r.exit_code == 0, r
        assert json.loads(r.stdout)["id"] == "acme/tiny" and hub.stats().total > 0


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("http://127.0.0.1:99999", "port"),
        ("http://127.0.0.1:abc", "port"),
        ("http://127.0.0.1:0", "port"),
        ("http://[::1", "not a valid URL"),
        ("http://", "http:// or https://"),
        ("ftp://u:hunter2@127.0.0.1", "http:// or https://"),
        ("u:hunter2@127.0.0.1:8080", "not a valid URL"),
        ("localhost:8080", "http:// or https://"),
        ("http://u:hunter2@127.0.0.1:65536/", "port"),
        ("http://u:hunter2/x@127.0.0.1", "not a valid URL"),  # the "/" makes "hunter2" the port
        ("http://u:hunter2?@127.0.0.1", "not a valid URL"),
        ("http://\u4e2d\u6587.example", "ASCII"),
    ],
)
def test_endpoints_that_cannot_be_used_are_refused_when_loaded(
    tmp_path: Path, endpoint: str, reason: str
) -> None:
    for source in ({"HF_ENDPOINT": endpoint}, {}):
        with pytest.raises(UsageError, match="invalid endpoint") as info:
            load_config({"HF_HOME": str(tmp_path), **source}, endpoint=None if source else endpoint)
        message = str(info.value)
        assert reason in message and "hunter2" not in message and "\n" not in message, message


def test_a_valid_endpoint_keeps_its_credentials_and_ipv6_form(tmp_path: Path) -> None:
    home = {"HF_HOME": str(tmp_path)}
    assert load_config(home, endpoint="http://[::1]:8080/").endpoint == "http://[::1]:8080"
    assert load_config(home, endpoint="https://u:p@mirror.local").endpoint == "https://u:p@mirror.local"
    assert load_config(home, endpoint="http://mirror.local:65535").endpoint_origin == (
        "http",
        "mirror.local",
        65535,
    )

"""Legacy bare ids (`gpt2`, `squad`): read commands follow the Hub's redirect, push refuses them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.errors import ExitCode
from engine.testing.hub import LocalHub
from tests.cli.test_pull import _official
from tests.conftest import CliResult

Run = Callable[..., CliResult]
FILES = {"config.json": b'{"n_layer": 12}', "model.safetensors": os.urandom(256 * 1024)}


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread() as h:
        h.add_repo("openai-community/gpt2", FILES)
        h.add_alias("gpt2", "openai-community/gpt2")
        h.add_repo("rajpurkar/squad", {"train.json": b'{"q": 1}'}, repo_type="dataset")
        h.add_alias("squad", "rajpurkar/squad", repo_type="dataset")
        h.add_token("hf_legacy_writer_000000000000000000", user="alice", role="write")
        yield h


def test_official_client_and_batuta_agree_on_a_bare_id(
    run_cli: Run, hub: LocalHub, isolated_home: Path
) -> None:
    # The oracle first: huggingface_hub follows our redirects and keys its cache by "gpt2".
    theirs = isolated_home.parent / "theirs"
    _official('from huggingface_hub import snapshot_download; snapshot_download("gpt2")', hub, theirs)
    assert (theirs / "hub" / "models--gpt2" / "refs" / "main").exists()
    r = run_cli("--endpoint", hub.url, "hf", "pull", "model", "gpt2", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["repo"] == "gpt2"
    out = _official(
        """
        from huggingface_hub import hf_hub_download
        print(open(hf_hub_download("gpt2", "config.json", local_files_only=True), "rb").read().decode())
        """,
        hub,
        isolated_home,
        offline=True,
    )
    assert out.strip() == FILES["config.json"].decode()


def test_info_and_folder_pull_of_bare_ids(
    run_cli: Run, hub: LocalHub, tmp_path: Path, isolated_home: Path
) -> None:
    info = run_cli("--endpoint", hub.url, "hf", "info", "model", "gpt2", "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["id"] == "openai-community/gpt2"
    r = run_cli(
        "--endpoint", hub.url, "hf", "pull", "dataset", "squad", "-o", str(tmp_path / "data"), "--quiet"
    )
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "data" / "train.json").read_bytes() == b'{"q": 1}'


def test_push_to_a_bare_id_is_refused(
    run_cli: Run, hub: LocalHub, tmp_path: Path, isolated_home: Path
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    r = run_cli(
        "--endpoint", hub.url, "--token", "hf_legacy_writer_000000000000000000",
        "hf", "push", "model", str(tmp_path / "m"), "--repo", "gpt2",
    )  # fmt: skip
    assert r.exit_code == ExitCode.USAGE and "namespace/name" in r.stderr
    assert hub.stats().count("write") == 0

"""Our parsers accept every recorded real Hub response in shared/fixtures/hub/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from engine._api import RepoInfo, parse_tree_entry

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "hub"

pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason="shared/fixtures/hub not laid out beside the repo"
)


def load(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


def test_model_info_with_blobs() -> None:
    info = RepoInfo.parse(load("model_info_blobs_mcpotato_42-eicar-street.json"))  # type: ignore[arg-type]
    assert info.id == "mcpotato/42-eicar-street"
    assert info.sha == "8b3861f6931c4026b0cd22b38dbc09e7668983ac"
    by_path = {f.path: f for f in info.files}
    assert len(by_path) == 7
    weights = by_path["pytorch_model.bin"]
    assert weights.is_lfs and weights.size == 22
    assert weights.etag == "f9343d7d7ec5c3d8bcced056c438fc9f1d3819e9ca3d42418a40857050e10e20"
    assert by_path["danger.dat"].etag == "8acd02161fff53f9df9597e377e22b04bc34feff"


@pytest.mark.parametrize(
    "name",
    [
        "tree_google-bert_bert-base-uncased_dd4bc8b2.json",
        "tree_google-bert_bert-base-uncased_dd4bc8b2_expand_minus_securityFileStatus.json",
    ],
)
def test_tree_listings_with_xet_and_last_commit(name: str) -> None:
    entries = load(name)
    assert isinstance(entries, list)
    files = [parse_tree_entry(e) for e in entries]
    parsed = {f.path: f for f in files if f is not None}
    assert parsed["config.json"].blob_id == "fca794a5f07ff8f963fe8b61e3694b0fb7f955df"
    assert not parsed["config.json"].is_lfs
    bin_ = parsed["pytorch_model.bin"]
    assert bin_.size == 440473133
    assert bin_.etag == "097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a"


def test_space_expand_and_write_bodies_parse() -> None:
    info = RepoInfo.parse(load("space_revision_expand_xetEnabled.json"))  # type: ignore[arg-type]
    assert info.id and info.files == ()
    for name in (
        "commit_response.json",
        "preupload_regular_new_file.json",
        "preupload_regular_existing_file_with_oid.json",
        "repos_create_200_space.json",
        "repos_create_409_already_exists.json",
        "space_runtime_building.json",
        "space_runtime_static_running.json",
    ):
        assert isinstance(load(name), dict)


def test_resolve_observations_are_consistent_with_the_etag_rule() -> None:
    obs = yaml.safe_load((FIXTURES / "resolve_metadata_observations.yaml").read_text())
    for item in obs:
        etag = item["etag"].strip('"')
        # LFS/Xet content: sha256 (64 hex); regular files and pointers: git sha1 (40 hex).
        assert len(etag) == (64 if "LFS file" in item["kind"] or "Xet" in item["kind"] else 40)


def test_hub_scan_verdicts_mark_files_unsafe() -> None:
    from engine._api import hub_scan_verdicts as _hub_scan
    from engine._select import safety_of

    raw = {
        "securityRepoStatus": {
            "scansDone": True,
            "filesWithIssues": [{"path": "danger.dat", "level": "unsafe"}],
        }
    }
    scan = _hub_scan(raw)
    assert scan == {"danger.dat": "unsafe"}
    assert not safety_of("danger.dat", scan.get("danger.dat")).safe
    assert safety_of("config.json", scan.get("config.json")).safe
    assert _hub_scan({"securityRepoStatus": None}) == {}

"""Conformance with the official `huggingface_hub` client (2.4.0), run in a subprocess per test.

The client reads its settings from the environment at import time, so each script runs in a
fresh interpreter with HF_ENDPOINT pointing at the LocalHub and an isolated HF_HOME.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, cast

from engine.testing import LocalHub
from engine.testing.http import run_official_client

WRITE_TOKEN = "hf_write_alice"  # registered by the `hub` fixture
BIG = os.urandom(12 * 1024 * 1024)  # >= 10 MiB: LFS by size, served through the blob listener

READ_SCRIPT = r"""
import hashlib, json, os
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
api = HfApi()
out = {}
out["search"] = [m.id for m in api.list_models(search="TINY", limit=5)]
out["filter"] = [m.id for m in api.list_models(filter="fill-mask")]
out["limit"] = [m.id for m in api.list_models(limit=4)]
out["all"] = len(list(api.list_models()))
out["datasets"] = [d.id for d in api.list_datasets(filter="task_categories:text-classification")]
info = api.model_info("acme/tiny", files_metadata=True)
out["sha"] = info.sha
out["siblings"] = {s.rfilename: [s.size, s.blob_id, s.lfs.sha256 if s.lfs else None] for s in info.siblings}
out["pipeline"] = info.pipeline_tag
out["dataset_sha"] = api.dataset_info("acme/data").sha
out["space_sdk"] = api.space_info("acme/space").sdk
out["tree"] = [f.path for f in api.list_repo_tree("acme/tiny", recursive=True)]
out["config"] = open(hf_hub_download("acme/tiny", "config.json")).read()
out["big"] = hashlib.sha256(open(hf_hub_download("acme/tiny", "big.bin"), "rb").read()).hexdigest()
snap = snapshot_download("acme/tiny", allow_patterns=["*.json", "sub/*"])
out["snapshot"] = sorted(os.path.relpath(os.path.join(d, f), snap) for d, _, fs in os.walk(snap) for f in fs)
print(json.dumps(out))
"""


def test_official_client_reads(hub: LocalHub, tmp_path: Path) -> None:
    sha = hub.add_repo(
        "acme/tiny",
        {"config.json": '{"a": 1}', "big.bin": BIG, "sub/x.txt": "x", "w.safetensors": b"\x01" * 100},
        meta={"pipeline_tag": "fill-mask", "library_name": "transformers"},
    )
    for i in range(5):  # more repos than one list page (3 in the fixture), to exercise paging
        hub.add_repo(f"org/m{i}", {"a.txt": str(i)})
    hub.add_repo(
        "acme/data",
        {"train.csv": "a\n"},
        repo_type="dataset",
        meta={"task_categories": ["text-classification"]},
    )
    hub.add_repo("acme/space", {"app.py": "print(1)"}, repo_type="space", meta={"sdk": "gradio"})

    out = cast(dict[str, Any], run_official_client(READ_SCRIPT, endpoint=hub.url, home=tmp_path / "hf"))
    assert out["search"] == ["acme/tiny"] and out["filter"] == ["acme/tiny"]
    assert len(out["limit"]) == 4 and out["all"] == 6
    assert out["datasets"] == ["acme/data"] and out["space_sdk"] == "gradio"
    assert out["sha"] == sha and out["pipeline"] == "fill-mask"
    assert out["siblings"]["big.bin"] == [
        len(BIG),
        out["siblings"]["big.bin"][1],
        hashlib.sha256(BIG).hexdigest(),
    ]
    assert out["siblings"]["config.json"][2] is None
    assert out["tree"] == ["big.bin", "config.json", "sub", "sub/x.txt", "w.safetensors"]
    assert out["config"] == '{"a": 1}' and out["big"] == hashlib.sha256(BIG).hexdigest()
    # big.bin was fetched above into the same snapshot; allow_patterns kept w.safetensors out.
    assert out["snapshot"] == ["big.bin", "config.json", os.path.join("sub", "x.txt")]
    stats = hub.stats()
    assert stats.blob_requests_with_auth == 0 and stats.blob_bytes_sent == len(BIG)
    assert stats.count("list") >= 3  # the unbounded listing walked several pages


WRITE_SCRIPT = r"""
import hashlib, json, os, pathlib
from huggingface_hub import HfApi, CommitOperationDelete, hf_hub_download
api = HfApi()
out = {}
out["url"] = str(api.create_repo("new-model"))
out["exists_ok"] = str(api.create_repo("new-model", exist_ok=True))
folder = pathlib.Path(os.environ["HF_HOME"]) / "upload"
(folder / "sub").mkdir(parents=True)
(folder / "README.md").write_text("---\nlicense: mit\n---\n# hi\n")
(folder / "sub" / "notes.txt").write_text("regular text")
(folder / "weights.safetensors").write_bytes(os.urandom(50_000))
(folder / "large.dat").write_bytes(b"\x00" + os.urandom(3 * 1024 * 1024 + 5))  # NUL: binary, so LFS
first = api.upload_folder(repo_id="alice/new-model", folder_path=folder)
second = api.upload_folder(repo_id="alice/new-model", folder_path=folder)
out["first"], out["second"] = first.oid, second.oid
out["files"] = sorted(api.list_repo_files("alice/new-model"))
for name in ["sub/notes.txt", "weights.safetensors", "large.dat"]:
    local = hf_hub_download("alice/new-model", name)
    out[name] = hashlib.sha256(open(local, "rb").read()).hexdigest() == hashlib.sha256((folder / name).read_bytes()).hexdigest()
commit = api.create_commit("alice/new-model", [CommitOperationDelete("sub/notes.txt")], commit_message="drop notes")
out["after_delete"] = sorted(api.list_repo_files("alice/new-model"))
out["head"] = api.model_info("alice/new-model").sha == commit.oid
pr = api.create_commit("alice/new-model", [CommitOperationDelete("large.dat")], commit_message="pr", create_pr=True)
out["pr"] = pr.pr_revision
out["pr_files"] = sorted(api.list_repo_files("alice/new-model", revision=pr.pr_revision))
print(json.dumps(out))
"""


def test_official_client_writes(hub: LocalHub, tmp_path: Path) -> None:
    out = cast(
        dict[str, Any],
        run_official_client(WRITE_SCRIPT, endpoint=hub.url, home=tmp_path / "hf", token=WRITE_TOKEN),
    )
    assert out["url"] == out["exists_ok"] == f"{hub.url}/alice/new-model"
    assert out["first"] == out["second"]  # the second identical upload made no commit
    assert out["files"] == [
        ".gitattributes",
        "README.md",
        "large.dat",
        "sub/notes.txt",
        "weights.safetensors",
    ]
    assert out["sub/notes.txt"] and out["weights.safetensors"] and out["large.dat"]
    assert out["after_delete"] == [".gitattributes", "README.md", "large.dat", "weights.safetensors"]
    assert out["head"] and out["pr"] == "refs/pr/1"
    assert out["pr_files"] == [".gitattributes", "README.md", "weights.safetensors"]
    stats = hub.stats()
    # large.dat (3 MiB) went multipart with 1 MiB parts: 4 part PUTs + 1 completion POST; weights basic.
    assert stats.count("upload", "PUT") == 5 and stats.count("upload", "POST") == 1
    assert stats.count("commit") == 3 and stats.count("validate-yaml") >= 1
    assert stats.writes >= 10 and stats.blob_requests_with_auth == 0
    assert not [r for r in stats.requests if r.kind in ("upload", "blob") and r.authorized]

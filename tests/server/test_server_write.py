"""Write API over raw HTTP: repos, preupload, LFS batch and uploads, commits, branches, auth."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any, cast

import pytest

from engine.testing import LocalHub
from engine.testing.http import Reply, expect_json, fetch, post_json

# Registered by the `hub` fixture in conftest.py.
WRITE_TOKEN, READ_TOKEN = "hf_write_alice", "hf_read_bob"
MiB = 1024 * 1024


def _post(url: str, payload: object, token: str | None = WRITE_TOKEN) -> Reply:
    return post_json(url, payload, token)


def _ndjson(header: dict[str, object], *ops: tuple[str, dict[str, object]]) -> str:
    lines = [{"key": "header", "value": header}, *({"key": k, "value": v} for k, v in ops)]
    return "".join(json.dumps(line) + "\n" for line in lines)


def _commit(hub: LocalHub, repo: str, body: str, *, rev: str = "main", query: str = "") -> Reply:
    return fetch(
        "POST",
        f"{hub.url}/api/models/{repo}/commit/{rev}{query}",
        body=body,
        token=WRITE_TOKEN,
        headers={"Content-Type": "application/x-ndjson"},
    )


def _file(path: str, data: bytes) -> tuple[str, dict[str, object]]:
    return "file", {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}


def _upload_lfs(hub: LocalHub, repo: str, data: bytes) -> str:
    oid = hashlib.sha256(data).hexdigest()
    batch = expect_json(
        _post(
            f"{hub.url}/{repo}.git/info/lfs/objects/batch",
            {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]},
        )
    )
    href = batch["objects"][0]["actions"]["upload"]["href"]
    assert fetch("PUT", href, body=data).status == 200
    return oid


def test_create_repo_auth_and_conflict(hub: LocalHub) -> None:
    url = f"{hub.url}/api/repos/create"
    assert _post(url, {"name": "m", "organization": None}, token=None).status == 401
    assert _post(url, {"name": "m"}, token=READ_TOKEN).status == 403
    assert _post(url, {"name": "m"}, token="hf_bogus").status == 401
    created = expect_json(_post(url, {"name": "m", "organization": None, "private": False}))
    assert (
        created["url"] == f"{hub.url}/alice/m" and created["name"] == "alice/m" and len(created["id"]) == 24
    )
    again = expect_json(_post(url, {"name": "m"}), 409)
    assert again == {"error": "You already created this model repo", "url": f"{hub.url}/alice/m"}
    space = expect_json(_post(url, {"name": "s", "organization": "acme", "type": "space", "sdk": "gradio",
                             "visibility": "private"}))  # fmt: skip
    assert space["url"] == f"{hub.url}/spaces/acme/s"
    assert fetch("GET", f"{hub.url}/api/spaces/acme/s").status == 401  # private
    info = expect_json(fetch("GET", f"{hub.url}/api/spaces/acme/s", token=WRITE_TOKEN))
    assert info["sdk"] == "gradio" and [s["rfilename"] for s in info["siblings"]] == [".gitattributes"]
    gone = fetch("DELETE", f"{hub.url}/api/repos/delete", token=WRITE_TOKEN,
                 body=json.dumps({"name": "m", "organization": "alice", "type": "model"}))  # fmt: skip
    assert gone.status == 200 and gone.body == b"OK"
    assert fetch("GET", f"{hub.url}/api/models/alice/m", token=WRITE_TOKEN).status == 404
    assert hub.stats().writes == 7


def test_preupload_modes_ignore_and_oids(hub: LocalHub) -> None:
    weights = os.urandom(100)
    hub.add_repo("alice/m", {"config.json": "{}", "w.safetensors": weights, ".gitignore": "*.log\n"})
    files = [
        {"path": "config.json", "sample": base64.b64encode(b"{}").decode(), "size": 2},
        {"path": "w.safetensors", "sample": base64.b64encode(weights).decode(), "size": 100},
        {"path": "new.txt", "sample": base64.b64encode(b"a\x00b").decode(), "size": 3},
        {"path": "huge.txt", "sample": base64.b64encode(b"text").decode(), "size": 11 * MiB},
        {"path": "debug.log", "sample": "", "size": 0},
    ]
    reply = expect_json(_post(f"{hub.url}/api/models/alice/m/preupload/main", {"files": files}))
    got = {f["path"]: f for f in reply["files"]}
    assert got["config.json"] == {"path": "config.json", "uploadMode": "regular", "shouldIgnore": False,
                                  "oid": hashlib.sha1(b"blob 2\x00{}").hexdigest()}  # fmt: skip
    assert got["w.safetensors"]["uploadMode"] == "lfs"
    assert got["w.safetensors"]["oid"] == hashlib.sha256(weights).hexdigest()
    assert got["new.txt"]["uploadMode"] == "lfs" and "oid" not in got["new.txt"]  # NUL byte
    assert got["huge.txt"]["uploadMode"] == "lfs"  # size
    assert got["debug.log"]["shouldIgnore"] is True
    assert reply["commitOid"] == hub.head("alice/m")
    assert (
        _post(f"{hub.url}/api/models/alice/m/preupload/main", {"files": []}, token=READ_TOKEN).status == 403
    )


def test_lfs_basic_upload_verify_and_dedup(hub: LocalHub) -> None:
    hub.add_repo("alice/m", {"a.txt": "a"})
    data = os.urandom(5000)
    oid = hashlib.sha256(data).hexdigest()
    batch_url = f"{hub.url}/alice/m.git/info/lfs/objects/batch"
    req = {"operation": "upload", "transfers": ["basic", "multipart"], "objects": [{"oid": oid, "size": 5000}],
           "hash_algo": "sha256", "ref": {"name": "main"}}  # fmt: skip
    assert _post(batch_url, req, token=None).status == 401
    answer = expect_json(_post(batch_url, req))
    assert answer["transfer"] == "basic"
    actions = answer["objects"][0]["actions"]
    href, verify = actions["upload"]["href"], actions["verify"]["href"]
    assert href.startswith(hub.blob_url + "/upload/") and verify.startswith(hub.url)
    assert fetch("PUT", href, body=data, token=WRITE_TOKEN).status == 400  # no Authorization on the CDN
    assert fetch("PUT", href, body=data[:-1] + b"!").status == 400  # sha256 mismatch
    assert _post(verify, {"oid": oid, "size": 5000}).status == 404
    assert fetch("PUT", href, body=data).status == 200
    assert _post(verify, {"oid": oid, "size": 5000}).status == 200
    again = expect_json(_post(batch_url, req))
    assert again["objects"] == [{"oid": oid, "size": 5000}]  # already stored: no actions
    assert hub.stats().upload_bytes_received == 2 * 5000


def test_lfs_multipart_upload(hub: LocalHub) -> None:
    hub.add_repo("alice/m", {"a.txt": "a"})
    data = os.urandom(2 * MiB + 300)  # fixture: multipart from 2 MiB, 1 MiB parts
    oid = hashlib.sha256(data).hexdigest()
    req = {
        "operation": "upload",
        "transfers": ["basic", "multipart"],
        "objects": [{"oid": oid, "size": len(data)}],
    }
    answer = expect_json(_post(f"{hub.url}/alice/m.git/info/lfs/objects/batch", req))
    upload = answer["objects"][0]["actions"]["upload"]
    header = upload["header"]
    assert header["chunk_size"] == str(MiB) and sorted(k for k in header if k.isdigit()) == [
        "00001",
        "00002",
        "00003",
    ]
    parts = []
    for n in (1, 2, 3):
        url = header[f"{n:05d}"]
        assert url.startswith(hub.blob_url)
        reply = fetch("PUT", url, body=data[(n - 1) * MiB : n * MiB])
        assert reply.status == 200 and reply.header("etag")
        parts.append({"partNumber": n, "etag": reply.header("etag")})
    bad = fetch("POST", upload["href"], body=json.dumps({"oid": oid, "parts": parts[:2]}))
    assert bad.status == 400
    done = fetch("POST", upload["href"], body=json.dumps({"oid": oid, "parts": parts}))
    assert done.status == 200
    assert (
        expect_json(_post(f"{hub.url}/alice/m.git/info/lfs/objects/batch", req))["objects"][0].get("actions")
        is None
    )
    body = _ndjson(
        {"summary": "big"}, ("lfsFile", {"path": "big.dat", "algo": "sha256", "oid": oid, "size": len(data)})
    )
    assert expect_json(_commit(hub, "alice/m", body))["success"] is True
    location = fetch("HEAD", f"{hub.url}/alice/m/resolve/main/big.dat").header("location") or ""
    assert fetch("GET", location).body == data


def test_commit_add_delete_and_head(hub: LocalHub) -> None:
    parent = hub.add_repo("alice/m", {"old.txt": "old", "dir/a.txt": "a", "dir/b.txt": "b"})
    weights = os.urandom(3000)
    oid = _upload_lfs(hub, "alice/m", weights)
    body = _ndjson(
        {"summary": "update", "description": "", "parentCommit": parent},
        _file("new.txt", b"new"),
        ("lfsFile", {"path": "w.safetensors", "algo": "sha256", "oid": oid, "size": len(weights)}),
        ("deletedFile", {"path": "old.txt"}),
        ("deletedFolder", {"path": "dir/"}),
    )
    answer = expect_json(_commit(hub, "alice/m", body))
    head = hub.head("alice/m")
    assert answer == {"success": True, "commitOid": head, "commitUrl": f"{hub.url}/alice/m/commit/{head}",
                      "hookOutput": ""}  # fmt: skip
    files = sorted(
        p.relative_to(hub.repo_dir("alice/m")).as_posix() for p in hub.repo_dir("alice/m").rglob("*")
    )
    assert files == ["new.txt", "w.safetensors"]
    info = expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/revision/main?blobs=true"))
    assert info["sha"] == head and info["siblings"][1]["lfs"]["sha256"] == oid
    commits = cast(list[dict[str, Any]], fetch("GET", f"{hub.url}/api/models/alice/m/commits/main").json())
    assert commits[0]["id"] == head and commits[0]["title"] == "update"


@pytest.mark.parametrize(
    ("ops", "status", "code"),
    [
        ((("deletedFile", {"path": "missing.txt"}),), 404, "EntryNotFound"),
        ((("lfsFile", {"path": "w.bin", "algo": "sha256", "oid": "ab" * 32, "size": 3}),), 400, None),
        ((("file", {"path": "../escape", "content": "", "encoding": "base64"}),), 400, None),
    ],
)
def test_failed_commits_leave_nothing_behind(
    hub: LocalHub, ops: tuple[tuple[str, dict[str, object]], ...], status: int, code: str | None
) -> None:
    head = hub.add_repo("alice/m", {"keep.txt": "k"})
    reply = _commit(hub, "alice/m", _ndjson({"summary": "x"}, _file("added.txt", b"added"), *ops))
    assert reply.status == status and reply.header("x-error-code") == code
    if code == "EntryNotFound":
        assert "A file with this name doesn't exist" in (reply.header("x-error-message") or "")
    assert hub.head("alice/m") == head and not (hub.repo_dir("alice/m") / "added.txt").exists()
    assert not list((hub.root / ".batuta" / "tmp").glob("commit-*"))


def test_parent_commit_mismatch_is_412(hub: LocalHub) -> None:
    hub.add_repo("alice/m", {"a.txt": "a"})
    reply = _commit(hub, "alice/m", _ndjson({"summary": "x", "parentCommit": "0" * 40}, _file("b.txt", b"b")))
    assert reply.status == 412 and not (hub.repo_dir("alice/m") / "b.txt").exists()


def test_create_pr_and_branches(hub: LocalHub) -> None:
    main_head = hub.add_repo("alice/m", {"a.txt": "a"})
    answer = expect_json(
        _commit(hub, "alice/m", _ndjson({"summary": "pr"}, _file("b.txt", b"b")), query="?create_pr=1")
    )
    assert answer["pullRequestUrl"] == f"{hub.url}/alice/m/discussions/1"
    assert hub.head("alice/m") == main_head
    assert fetch("GET", f"{hub.url}/alice/m/resolve/refs%2Fpr%2F1/b.txt").body == b"b"
    assert fetch("GET", f"{hub.url}/alice/m/resolve/{answer['commitOid']}/a.txt").body == b"a"
    second = expect_json(
        _commit(hub, "alice/m", _ndjson({"summary": "pr2"}, _file("c.txt", b"c")), query="?create_pr=1")
    )
    assert second["pullRequestUrl"].endswith("/discussions/2")

    branch_url = f"{hub.url}/api/models/alice/m/branch/dev"
    assert fetch("POST", branch_url, token=WRITE_TOKEN).status == 200
    assert fetch("POST", branch_url, token=WRITE_TOKEN).status == 409
    assert expect_json(
        _commit(hub, "alice/m", _ndjson({"summary": "on dev"}, _file("d.txt", b"d")), rev="dev")
    )["success"]
    assert hub.head("alice/m") == main_head and (hub.repo_dir("alice/m", revision="dev") / "d.txt").exists()
    assert (
        _commit(hub, "alice/m", _ndjson({"summary": "x"}), rev="nope").header("x-error-code")
        == "RevisionNotFound"
    )
    assert fetch("DELETE", branch_url, token=WRITE_TOKEN).status == 200
    assert fetch("GET", f"{hub.url}/alice/m/resolve/dev/d.txt").status == 404


def test_account_routes(hub: LocalHub) -> None:
    me = expect_json(fetch("GET", f"{hub.url}/api/whoami-v2", token=WRITE_TOKEN))
    assert me["name"] == "alice" and me["auth"]["accessToken"]["role"] == "write"
    assert fetch("GET", f"{hub.url}/api/whoami-v2").status == 401
    assert (
        expect_json(_post(f"{hub.url}/api/validate-yaml", {"content": "---\n---\n", "repoType": "model"}))
        == {}
    )


def test_faults_apply_to_write_routes(hub: LocalHub) -> None:
    hub.add_repo("alice/m", {"a.txt": "a"})
    hub.fail(status=503, times=1, path_contains="/commit/")
    body = _ndjson({"summary": "x"}, _file("b.txt", b"b"))
    assert _commit(hub, "alice/m", body).status == 503
    assert _commit(hub, "alice/m", body).status == 200
    data = os.urandom(200_000)
    oid = hashlib.sha256(data).hexdigest()
    req = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]}
    href = expect_json(_post(f"{hub.url}/alice/m.git/info/lfs/objects/batch", req))["objects"][0]["actions"][
        "upload"
    ]["href"]
    hub.truncate_once(after_bytes=1000, path_contains="/upload/")
    with pytest.raises(ConnectionError):
        fetch("PUT", href, body=data)
    assert "actions" in expect_json(_post(f"{hub.url}/alice/m.git/info/lfs/objects/batch", req))["objects"][0]
    assert fetch("PUT", href, body=data).status == 200
    stats = hub.stats()
    assert stats.faults_fired == {"503": 1, "truncate": 1} and stats.count("commit") == 2

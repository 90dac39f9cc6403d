"""Read API over real sockets: info, listing, tree, resolve, errors, auth, paging, rate limits."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, cast

from engine.server._rules import git_blob_sha1
from engine.testing import LocalHub
from engine.testing.http import Reply, fetch

# Registered by the `hub` fixture in conftest.py.
WRITE_TOKEN, READ_TOKEN, GATED_TOKEN = "hf_write_alice", "hf_read_bob", "hf_read_gated_carol"

CONFIG = b'{"model_type": "bert"}'
WEIGHTS = os.urandom(4096)


def _tiny(hub: LocalHub) -> str:
    return hub.add_repo(
        "acme/tiny",
        {"config.json": CONFIG, "model.safetensors": WEIGHTS, "sub/dir/x.txt": "hello", "sub/y.txt": "y"},
        meta={"pipeline_tag": "fill-mask", "library_name": "transformers", "license": "mit", "downloads": 7},
    )


def _obj(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply
    return cast(dict[str, Any], reply.json())


def _list(reply: Reply) -> list[dict[str, Any]]:
    assert reply.status == 200, reply
    return cast(list[dict[str, Any]], reply.json())


def _next_link(reply: Reply) -> str | None:
    link = reply.header("link")
    m = re.match(r'<([^>]+)>;\s*rel="next"', link or "")
    return m.group(1) if m else None


def test_info_fields_and_sha(hub: LocalHub) -> None:
    sha = _tiny(hub)
    info = _obj(fetch("GET", f"{hub.url}/api/models/acme/tiny/revision/main?blobs=true"))
    assert info["sha"] == sha and info["id"] == info["modelId"] == "acme/tiny"
    assert re.fullmatch(r"[0-9a-f]{24}", info["_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", info["lastModified"])
    assert info["gated"] is False and info["private"] is False
    assert {"fill-mask", "transformers", "license:mit"} <= set(info["tags"])
    assert info["cardData"] == {"license": "mit"}
    siblings = {s["rfilename"]: s for s in info["siblings"]}
    assert siblings["config.json"] == {
        "rfilename": "config.json",
        "blobId": git_blob_sha1(CONFIG),
        "size": len(CONFIG),
    }
    lfs = siblings["model.safetensors"]["lfs"]
    assert lfs["sha256"] == hashlib.sha256(WEIGHTS).hexdigest() and lfs["size"] == len(WEIGHTS)
    assert info["usedStorage"] == len(CONFIG) + len(WEIGHTS) + 6
    # The commit id resolves as a revision, and `expand` limits the answer.
    by_sha = _obj(fetch("GET", f"{hub.url}/api/models/acme/tiny/revision/{sha}?expand=sha&expand=xetEnabled"))
    assert by_sha == {"_id": info["_id"], "id": "acme/tiny", "sha": sha, "xetEnabled": False}
    bad = fetch("GET", f"{hub.url}/api/models/acme/tiny?expand=nonsense")
    assert bad.status == 400 and "siblings" in (bad.header("x-error-message") or "")


def test_hand_added_files_show_up_as_a_new_commit(hub: LocalHub) -> None:
    sha = _tiny(hub)
    (hub.repo_dir("acme/tiny") / "new.txt").write_text("added by hand")
    info = _obj(fetch("GET", f"{hub.url}/api/models/acme/tiny"))
    assert info["sha"] != sha and "new.txt" in {s["rfilename"] for s in info["siblings"]}
    assert fetch("GET", f"{hub.url}/acme/tiny/resolve/main/new.txt").body == b"added by hand"
    # A folder created by hand is a repo too, with no registration step.
    (hub.root / "datasets" / "org" / "manual").mkdir(parents=True)
    (hub.root / "datasets" / "org" / "manual" / "data.csv").write_text("a,b\n")
    assert _obj(fetch("GET", f"{hub.url}/api/datasets/org/manual"))["siblings"] == [{"rfilename": "data.csv"}]


def test_listing_search_filter_sort_and_pages(hub: LocalHub) -> None:
    for i in range(7):
        hub.add_repo(f"org{i % 2}/Model-{i}", {"a.txt": str(i)}, meta={"downloads": i, "tags": [f"t{i % 3}"]})
    hub.add_repo("acme/tiny", {"a.txt": "x"}, meta={"pipeline_tag": "fill-mask", "downloads": 100})
    found = _list(fetch("GET", f"{hub.url}/api/models?search=MODEL-3"))
    assert [m["id"] for m in found] == ["org1/Model-3"]
    assert [m["id"] for m in _list(fetch("GET", f"{hub.url}/api/models?pipeline_tag=fill-mask"))] == [
        "acme/tiny"
    ]
    assert [m["id"] for m in _list(fetch("GET", f"{hub.url}/api/models?filter=fill-mask"))] == ["acme/tiny"]
    t0 = _list(fetch("GET", f"{hub.url}/api/models?filter=t0&author=org0"))
    assert sorted(m["id"] for m in t0) == ["org0/Model-0", "org0/Model-6"]

    # Page size is min(limit, list_page_size=3); every page links to the next, absolutely.
    seen: list[str] = []
    url: str | None = f"{hub.url}/api/models?sort=downloads&direction=-1&limit=50"
    pages = 0
    while url is not None:
        reply = fetch("GET", url)
        seen += [m["id"] for m in _list(reply)]
        url, pages = _next_link(reply), pages + 1
        assert url is None or (url.startswith(hub.url) and "cursor=" in url and "sort=downloads" in url)
    assert (
        pages == 3
        and seen[0] == "acme/tiny"
        and seen[1:] == [f"org{i % 2}/Model-{i}" for i in range(6, -1, -1)]
    )
    full = _list(fetch("GET", f"{hub.url}/api/models?search=tiny&full=true"))
    assert full[0]["siblings"] == [{"rfilename": "a.txt"}] and len(full[0]["sha"]) == 40


def test_private_repos_are_hidden_and_answer_like_the_hub(hub: LocalHub) -> None:
    hub.add_repo("acme/secret", {"a.txt": "s"}, private=True)
    hub.add_token("hf_other", user="eve", namespaces=["eve-org"])
    anon = fetch("GET", f"{hub.url}/api/models/acme/secret")
    assert anon.status == 401 and anon.header("x-error-code") == "RepoNotFound"
    other = fetch("GET", f"{hub.url}/api/models/acme/secret", token="hf_other")
    assert other.status == 404 and other.header("x-error-code") == "RepoNotFound"
    assert _obj(fetch("GET", f"{hub.url}/api/models/acme/secret", token=READ_TOKEN))["private"] is True
    assert fetch("GET", f"{hub.url}/api/models").json() == []
    assert [m["id"] for m in _list(fetch("GET", f"{hub.url}/api/models", token=READ_TOKEN))] == [
        "acme/secret"
    ]
    resolve = fetch("GET", f"{hub.url}/acme/secret/resolve/main/a.txt")
    assert resolve.status == 401 and resolve.header("x-error-code") == "RepoNotFound"
    bad = fetch("GET", f"{hub.url}/api/models/acme/secret", token="hf_nope")
    assert (
        bad.status == 401 and bad.header("x-error-message") == "Invalid credentials in Authorization header"
    )


def test_gated_repo_metadata_public_content_gated(hub: LocalHub) -> None:
    hub.add_repo("acme/gated", {"a.txt": "g"}, gated=True)
    assert _obj(fetch("GET", f"{hub.url}/api/models/acme/gated"))["gated"] == "manual"
    anon = fetch("GET", f"{hub.url}/acme/gated/resolve/main/a.txt")
    assert (anon.status, anon.header("x-error-code")) == (401, "GatedRepo")
    denied = fetch("HEAD", f"{hub.url}/acme/gated/resolve/main/a.txt", token=READ_TOKEN)
    assert (denied.status, denied.header("x-error-code")) == (403, "GatedRepo")
    assert fetch("GET", f"{hub.url}/acme/gated/resolve/main/a.txt", token=GATED_TOKEN).body == b"g"


def test_not_found_errors_carry_hub_headers(hub: LocalHub) -> None:
    sha = _tiny(hub)
    cases = {
        f"{hub.url}/api/models/acme/nope": "RepoNotFound",
        f"{hub.url}/acme/nope/resolve/main/a": "RepoNotFound",
        f"{hub.url}/acme/tiny/resolve/v9/config.json": "RevisionNotFound",
        f"{hub.url}/api/models/acme/tiny/tree/v9": "RevisionNotFound",
        f"{hub.url}/acme/tiny/resolve/main/missing.json": "EntryNotFound",
    }
    for url, code in cases.items():
        reply = fetch("HEAD" if "resolve" in url else "GET", url, token=READ_TOKEN)
        assert (reply.status, reply.header("x-error-code")) == (404, code), url
        assert reply.header("x-error-message") and reply.header("x-request-id")
    missing = fetch("HEAD", f"{hub.url}/acme/tiny/resolve/main/missing.json")
    assert missing.header("x-repo-commit") == sha
    assert json.loads(fetch("GET", f"{hub.url}/api/models/acme/nope", token=READ_TOKEN).body) == {
        "error": "Repository not found"
    }
    # Anonymous, a missing repo gets what a private one gets (hub-protocol §2.3): existence stays hidden.
    hub.add_repo("acme/private", {"a": "a"}, private=True)
    answers = [fetch("GET", f"{hub.url}/api/models/acme/{name}") for name in ("nope", "private")]
    assert {(r.status, r.header("x-error-code"), r.body) for r in answers} == {
        (401, "RepoNotFound", b'{"error":"Invalid username or password."}')
    }


def test_resolve_regular_lfs_and_ranges(hub: LocalHub) -> None:
    sha = _tiny(hub)
    head = fetch("HEAD", f"{hub.url}/acme/tiny/resolve/main/config.json")
    assert head.status == 200 and head.body == b""
    assert head.header("etag") == f'"{git_blob_sha1(CONFIG)}"'
    assert head.header("x-repo-commit") == sha and head.header("content-length") == str(len(CONFIG))
    assert head.header("accept-ranges") == "bytes"
    part = fetch("GET", f"{hub.url}/acme/tiny/resolve/{sha}/config.json", headers={"Range": "bytes=2-999"})
    assert part.status == 206 and part.body == CONFIG[2:]
    assert part.header("content-range") == f"bytes 2-{len(CONFIG) - 1}/{len(CONFIG)}"
    nope = fetch("GET", f"{hub.url}/acme/tiny/resolve/main/config.json", headers={"Range": "bytes=500-"})
    assert nope.status == 416 and nope.header("content-range") == f"bytes */{len(CONFIG)}"

    lfs = fetch("HEAD", f"{hub.url}/acme/tiny/resolve/main/model.safetensors")
    digest = hashlib.sha256(WEIGHTS).hexdigest()
    assert lfs.status == 302 and lfs.header("x-linked-etag") == f'"{digest}"'
    assert lfs.header("x-linked-size") == str(len(WEIGHTS)) and lfs.header("x-repo-commit") == sha
    location = lfs.header("location") or ""
    assert location.startswith(hub.blob_url + f"/blobs/{digest}?")
    assert fetch("GET", location).body == WEIGHTS
    tail = fetch("GET", location, headers={"Range": "bytes=-10"})
    assert tail.status == 206 and tail.body == WEIGHTS[-10:]
    assert fetch("GET", location, headers={"Range": f"bytes={len(WEIGHTS)}-"}).status == 416
    pointer = fetch("GET", f"{hub.url}/acme/tiny/raw/main/model.safetensors").body
    assert pointer.startswith(b"version https://git-lfs") and digest.encode() in pointer
    stats = hub.stats()
    assert stats.blob_bytes_sent == len(WEIGHTS) + 10 and stats.resolve_bytes_sent == len(CONFIG) - 2
    assert stats.count("resolve", "HEAD") == 2 and stats.count("blob") == 3


def test_tree_listing_paths_and_revisions(hub: LocalHub) -> None:
    _tiny(hub)
    top = _list(fetch("GET", f"{hub.url}/api/models/acme/tiny/tree/main?recursive=false&expand=false"))
    assert [(e["type"], e["path"]) for e in top] == [
        ("file", "config.json"),
        ("file", "model.safetensors"),
        ("directory", "sub"),
    ]
    assert top[1]["lfs"]["oid"] == hashlib.sha256(WEIGHTS).hexdigest() and "xetHash" not in top[1]
    # Path with %2F and without, recursive listing includes folders, expand adds lastCommit.
    for url in (
        f"{hub.url}/api/models/acme/tiny/tree/main/sub%2Fdir",
        f"{hub.url}/api/models/acme/tiny/tree/main/sub/dir",
    ):
        assert [e["path"] for e in _list(fetch("GET", url))] == ["sub/dir/x.txt"]
    rec = _list(fetch("GET", f"{hub.url}/api/models/acme/tiny/tree/main/sub?recursive=true&expand=true"))
    assert [e["path"] for e in rec] == ["sub/dir", "sub/dir/x.txt", "sub/y.txt"]
    assert set(rec[1]["lastCommit"]) == {"id", "title", "date"}
    missing = fetch("GET", f"{hub.url}/api/models/acme/tiny/tree/main/nope")
    assert (missing.status, missing.header("x-error-code")) == (404, "EntryNotFound")

    # Branches with slashes: encoded (%2F) in every route; refs/pr/N also unencoded.
    hub.add_repo("acme/tiny", {"only-on-branch.txt": "b"}, revision="feature/x")
    hub.add_repo("acme/tiny", {"pr.txt": "p"}, revision="refs/pr/1")
    assert fetch("GET", f"{hub.url}/acme/tiny/resolve/feature%2Fx/only-on-branch.txt").body == b"b"
    assert fetch("GET", f"{hub.url}/acme/tiny/resolve/feature/x/only-on-branch.txt").status == 404
    assert fetch("GET", f"{hub.url}/acme/tiny/resolve/refs/pr/1/pr.txt").body == b"p"
    assert fetch("GET", f"{hub.url}/acme/tiny/resolve/refs%2Fpr%2F1/pr.txt").body == b"p"
    assert [e["path"] for e in _list(fetch("GET", f"{hub.url}/api/models/acme/tiny/tree/refs/pr/1"))] == [
        "pr.txt"
    ]
    refs = _obj(fetch("GET", f"{hub.url}/api/models/acme/tiny/refs?include_prs=1"))
    assert [b["name"] for b in refs["branches"]] == ["main", "feature/x"]
    assert [p["ref"] for p in refs["pullRequests"]] == ["refs/pr/1"]


def test_a_file_named_like_a_server_temp_file_is_listed(hub: LocalHub) -> None:
    # The server's own temp files live under .batuta/tmp; a user's may end the same way.
    hub.add_repo("acme/names", {"a.batuta-tmp": "x", "config.json": "{}"})
    tree = _list(fetch("GET", f"{hub.url}/api/models/acme/names/tree/main"))
    assert [e["path"] for e in tree] == ["a.batuta-tmp", "config.json"]
    assert fetch("GET", f"{hub.url}/acme/names/resolve/main/a.batuta-tmp").body == b"x"


def test_tree_pages_of_1000(hub: LocalHub) -> None:
    hub.add_repo("acme/many", {f"f{i:04d}.txt": "x" for i in range(1003)})
    first = fetch("GET", f"{hub.url}/api/models/acme/many/tree/main?recursive=true")
    assert len(_list(first)) == 1000
    nxt = _next_link(first)
    assert nxt is not None and nxt.startswith(hub.url)
    assert [e["path"] for e in _list(fetch("GET", nxt))] == ["f1000.txt", "f1001.txt", "f1002.txt"]
    expanded = fetch("GET", f"{hub.url}/api/models/acme/many/tree/main?expand=true")
    assert len(_list(expanded)) == 50 and _next_link(expanded) is not None


def test_paths_info(hub: LocalHub) -> None:
    _tiny(hub)
    reply = fetch(
        "POST",
        f"{hub.url}/api/models/acme/tiny/paths-info/main",
        body="paths=sub&paths=config.json&paths=nope&expand=false",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert [(e["type"], e["path"]) for e in _list(reply)] == [("directory", "sub"), ("file", "config.json")]


def test_rate_limit_headers_and_429(hub: LocalHub) -> None:
    _tiny(hub)
    info = fetch("GET", f"{hub.url}/api/models/acme/tiny")
    assert re.fullmatch(r'"api";r=\d+;t=\d+', info.header("ratelimit") or "")
    assert info.header("ratelimit-policy") == '"fixed window";"api";q=1000000000;w=300'
    hub.set_rate_limit(resolvers=2)
    url = f"{hub.url}/acme/tiny/resolve/main/config.json"
    assert [fetch("HEAD", url).status for _ in range(3)] == [200, 200, 429]
    limited = fetch("HEAD", url)
    assert re.fullmatch(r'"resolvers";r=0;t=\d+', limited.header("ratelimit") or "")
    assert fetch("GET", f"{hub.url}/api/models/acme/tiny").status == 200  # other bucket
    assert fetch("HEAD", url, token=WRITE_TOKEN).status == 200  # quotas are per client


def test_xet_is_never_advertised(hub: LocalHub, tmp_path: Path) -> None:
    _tiny(hub)
    reply = fetch("HEAD", f"{hub.url}/acme/tiny/resolve/main/model.safetensors")
    assert not any(h.startswith("x-xet") for h in reply.headers)
    assert "xetHash" not in fetch("GET", f"{hub.url}/api/models/acme/tiny/tree/main").body.decode()

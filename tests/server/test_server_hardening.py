"""Review fixes: redirects that must not leak private repos, LFS case redirects, case-insensitive
repo creation, git ref-name rules, strict discussion numbers, safe error headers, resolver errors."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, cast

import pytest

from engine.server import HubServer, ServerConfig
from engine.testing import LocalHub
from engine.testing.http import Reply, expect_json, fetch, post_json, run_official_client

# Registered by the `hub` fixture in conftest.py (bob's read token reaches every namespace).
WRITE_TOKEN, READ_TOKEN = "hf_write_alice", "hf_read_bob"
OUTSIDER_TOKEN = "hf_read_eve"  # added below: reaches only its own namespace


def _same_answer(a: Reply, b: Reply) -> bool:
    keys = ("x-error-code", "x-error-message", "location")
    return (a.status, a.body, [a.header(k) for k in keys]) == (b.status, b.body, [b.header(k) for k in keys])


def test_redirects_to_private_repos_need_a_token_that_can_read_them(hub: LocalHub) -> None:
    hub.add_repo("acme/secret", {"a.txt": "a"}, private=True)
    hub.add_alias("hidden", "acme/secret")
    hub.add_token(OUTSIDER_TOKEN, user="eve", namespaces=[])
    variants = {
        "/api/models/ACME/Secret": "/api/models/ACME/Nothing",
        "/api/models/acme/SECRET/tree/main": "/api/models/acme/NOTHING/tree/main",
        "/ACME/Secret/resolve/main/a.txt": "/ACME/Nothing/resolve/main/a.txt",
        "/api/models/hidden": "/api/models/nothing",
        "/hidden/resolve/main/a.txt": "/nothing/resolve/main/a.txt",
    }
    for path, missing in variants.items():
        for token in (None, OUTSIDER_TOKEN):
            reply, absent = (
                fetch("GET", hub.url + path, token=token),
                fetch("GET", hub.url + missing, token=token),
            )
            # Exactly what a name that matches nothing gets (401 anonymous, 404 with a token).
            assert reply.status in (401, 404) and _same_answer(reply, absent), (path, token)
        assert fetch("GET", hub.url + path, token=READ_TOKEN).status == 307, path
    ok = fetch("GET", f"{hub.url}/api/models/ACME/Secret", token=READ_TOKEN)
    assert ok.header("location") == "/api/models/acme/secret"
    assert fetch("GET", f"{hub.url}/api/models/hidden", token=READ_TOKEN).header("location") == (
        "/api/models/acme/secret"
    )
    # The exact name still answers as before: 401 anonymous, 404 for a token that cannot see it.
    assert fetch("GET", f"{hub.url}/api/models/acme/secret").status == 401
    assert fetch("GET", f"{hub.url}/api/models/acme/secret", token=OUTSIDER_TOKEN).status == 404
    assert fetch("GET", f"{hub.url}/api/models/ACME/Secret", token="hf_bogus").status == 401


UPLOAD_SCRIPT = r"""
import json
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
api.upload_file(path_or_fileobj=BLOB, path_in_repo="w.safetensors", repo_id="ACME/Tiny")
print(json.dumps({"back": open(hf_hub_download("acme/tiny", "w.safetensors"), "rb").read().hex()}))
"""


def test_official_client_uploads_lfs_files_under_a_case_variant_id(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("acme/tiny", {"a.txt": "a"})
    blob = bytes(range(256)) * 64
    script = f"BLOB = {blob!r}\n" + UPLOAD_SCRIPT
    out = cast(
        dict[str, Any], run_official_client(script, endpoint=hub.url, home=tmp_path / "hf", token=WRITE_TOKEN)
    )
    assert bytes.fromhex(out["back"]) == blob
    assert hub.stats().count("legacy", "POST") >= 1  # the batch call went through a redirect


def test_creating_a_case_variant_of_an_existing_repo_conflicts(hub: LocalHub) -> None:
    hub.add_repo("acme/tiny", {"a.txt": "a"})
    url = f"{hub.url}/api/repos/create"
    for payload in ({"name": "TINY", "organization": "acme"}, {"name": "ACME/Tiny"}):
        again = expect_json(post_json(url, payload, WRITE_TOKEN), 409)
        assert again == {"error": "You already created this model repo", "url": f"{hub.url}/acme/tiny"}
    assert sorted(p.name for p in hub.root.glob("models/*/*") if p.is_dir()) == ["tiny"]
    other_type = {"name": "TINY", "organization": "acme", "type": "dataset"}
    assert expect_json(post_json(url, other_type, WRITE_TOKEN))["name"] == "acme/TINY"


BAD_REF_NAMES = [
    ".", "..", "a/./b", "a/../b", ".hidden", "a/.b", "x.lock", "a/x.lock/b", "a b", "a~1", "a^", "a:b",
    "a?", "a*", "a[x", "a\\b", "a//b", "a/", "/a", "a.", "a@{1}", "@", "a\x00b", "a\x1fb", "a\x7fb", "",
    "a" * 256, "é" * 43, "a/" * 100 + "a", "refs/heads/x", "-x", "--force",
]  # fmt: skip


@pytest.mark.parametrize("kind", ["branch", "tag"])
def test_ref_names_follow_git_rules(hub: LocalHub, kind: str) -> None:
    hub.add_repo("alice/m", {"a.txt": "a"})
    state = hub.root / ".batuta"
    before = sorted(str(p) for p in state.rglob("*"))

    def create(name: str) -> Reply:
        if kind == "tag":
            return post_json(f"{hub.url}/api/models/alice/m/tag/main", {"tag": name}, WRITE_TOKEN)
        encoded = "".join(f"%{b:02X}" for b in name.encode())  # one path segment, whatever it holds
        return fetch("POST", f"{hub.url}/api/models/alice/m/branch/{encoded}", token=WRITE_TOKEN)

    for name in BAD_REF_NAMES:
        reply = create(name)
        message = cast(dict[str, str], reply.json())["error"]
        assert reply.status == 400 and message.startswith(f"invalid {kind} name"), (name, reply)
    assert sorted(str(p) for p in state.rglob("*") if "tmp" not in p.parts) == [
        p for p in before if "/tmp" not in p
    ]
    # Stored as one %-encoded folder name: 255 bytes once encoded (`é` is `%C3%A9`, 6 bytes).
    for name in ("release/1", "v1.0", "feat-x_2", "a" * 255, "é" * 42, "a@b", "x.lockfile"):
        assert create(name).status == 200, name
    refs = expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/refs"))
    assert len(refs["tags" if kind == "tag" else "branches"]) == 7 + (kind == "branch")


def test_discussion_numbers_are_ascii_digits(hub: LocalHub) -> None:
    hub.add_repo("alice/m", {"a.txt": "a"})
    base = f"{hub.url}/api/models/alice/m/discussions"
    for num in ("%C2%B2", "%D9%A3", "9" * 5000, "1234567890", "-1", "+1", "1%20"):
        reply = fetch("GET", f"{base}/{num}")
        assert reply.status == 404 and (reply.header("x-error-message") or "").startswith("Discussion "), num


def test_error_messages_outside_ascii_keep_their_text_in_the_body(hub: LocalHub) -> None:
    hub.add_repo("acme/tiny", {"a.txt": "a"})
    for rev, text in (("caf%C3%A9", "café"), ("%E2%9C%93%00%7F%C2%85", "✓\x00\x7f\x85")):
        reply = fetch("GET", f"{hub.url}/api/models/acme/tiny/revision/{rev}")
        assert reply.status == 404 and reply.header("x-error-code") == "RevisionNotFound"
        assert expect_json(reply, 404) == {"error": f"Invalid rev id: {text}"}
        header = reply.header("x-error-message") or ""
        assert header.isascii() and header.isprintable() and header.startswith("Invalid rev id: ")
    assert fetch("GET", f"{hub.url}/api/models/acme/tiny/revision/caf%C3%A9").header("x-error-message") == (
        "Invalid rev id: caf\\xe9"
    )


@pytest.mark.anyio
async def test_an_unknown_host_reports_the_resolver_message(tmp_path: Path) -> None:
    with pytest.raises(socket.gaierror) as expected:
        socket.getaddrinfo("nosuchhost.invalid", 0, socket.AF_INET, socket.SOCK_STREAM)
    server = HubServer(ServerConfig(root=tmp_path, host="nosuchhost.invalid"))
    with pytest.raises(OSError) as caught:
        await server.start()
    assert caught.value.strerror == f"cannot listen on nosuchhost.invalid:0: {expected.value.strerror}"
    assert json.dumps(caught.value.strerror)  # one line, no "Unknown error"


def test_names_and_paths_the_store_cannot_keep_are_400_not_500(hub: LocalHub) -> None:
    create = f"{hub.url}/api/repos/create"
    # `<name>.meta.json` is where the store keeps a repo's settings.
    meta = post_json(create, {"name": "x.meta.json", "organization": "alice"}, WRITE_TOKEN)
    assert meta.status == 400 and "may not end with '.meta.json'" in (meta.header("x-error-message") or "")
    assert expect_json(
        post_json(create, {"name": "x", "organization": "alice", "private": True}, WRITE_TOKEN)
    )
    hub.add_repo("alice/m", {"a.txt": "a"})
    for path in (".batuta/f", "x/.batuta/f", "x/.git/f", "n" * 300, "d/" * 3000 + "f"):
        line = {"key": "file", "value": {"path": path, "content": "x", "encoding": "utf-8"}}
        reply = fetch(
            "POST",
            f"{hub.url}/api/models/alice/m/commit/main",
            body=json.dumps({"key": "header", "value": {"summary": "s"}}) + "\n" + json.dumps(line) + "\n",
            token=WRITE_TOKEN,
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert reply.status == 400 and "invalid path in commit" in (reply.header("x-error-message") or ""), (
            path[:20]
        )
    cursor = base64.urlsafe_b64encode(b'{"offset": 1e999}').decode().rstrip("=")
    huge = fetch("GET", f"{hub.url}/api/models/alice/m/tree/main?cursor={cursor}")
    assert huge.status == 400 and huge.header("x-error-message") == "invalid cursor"


def test_tokens_json_broken_while_serving_keeps_the_last_good_tokens(
    hub: LocalHub, caplog: pytest.LogCaptureFixture
) -> None:
    hub.add_repo("alice/secret", {"a.txt": "a"}, private=True)
    url = f"{hub.url}/api/models/alice/secret"
    assert fetch("GET", url, token=WRITE_TOKEN).status == 200
    tokens = hub.root / "tokens.json"
    tokens.write_text(tokens.read_text()[:-5])  # an operator's half-saved edit
    assert fetch("GET", url, token=WRITE_TOKEN).status == 200  # not "no tokens at all"
    assert "tokens.json is not valid JSON" in caplog.text
    with pytest.raises(ValueError, match="not valid JSON"):
        hub.add_token("hf_new_token_for_test", user="zed")  # would overwrite what the operator wrote


def test_temp_entries_of_uploads_nobody_will_finish_are_swept_at_start(tmp_path: Path) -> None:
    tmp = tmp_path / ".batuta" / "tmp"
    old, fresh = tmp / "multipart-abandoned", tmp / "multipart-running"
    for d in (old, fresh):
        d.mkdir(parents=True)
        (d / "1").write_bytes(b"part")
    (tmp / "half.batuta-tmp").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    for p in (old / "1", old, tmp / "half.batuta-tmp"):
        os.utime(p, (two_days_ago, two_days_ago))
    with LocalHub.in_thread(tmp_path):
        assert sorted(p.name for p in tmp.iterdir()) == ["multipart-running"]

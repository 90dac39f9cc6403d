"""pull and info on unusual input: legacy bare ids, empty revisions, globs that match nothing,
offline selections the cache cannot answer, and JSON of the wrong shape."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine import Engine, OfflineError, ProtocolError, RepoRef, UsageError, load_config
from engine._pull import PullOptions
from engine.testing.hub import LocalHub
from tests.conftest import json_endpoint
from tests.engine.test_pull import FAST, cfg, do_pull

KiB = 1024


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread() as h:
        yield h


def test_bare_ids_are_accepted_only_where_asked() -> None:
    assert RepoRef.parse("model", "gpt2", legacy=True).repo_id == "gpt2"
    for bad in ("gpt2", "a/b/c", "", "/x"):
        with pytest.raises(UsageError, match="namespace/name"):
            RepoRef.parse("model", bad)
    for bad in ("a/b/c", "", "..", "x--y"):
        with pytest.raises(UsageError):
            RepoRef.parse("model", bad, legacy=True)


@pytest.mark.anyio
async def test_legacy_id_pulls_through_the_redirect_and_caches_under_the_asked_name(hub: LocalHub) -> None:
    files = {"config.json": b'{"n_layer": 12}', "model.safetensors": os.urandom(200 * KiB)}
    commit = hub.add_repo("openai-community/gpt2", files)
    hub.add_alias("gpt2", "openai-community/gpt2")
    config = cfg(hub)
    async with Engine(config) as engine:
        info = await engine.info(RepoRef.parse("model", "gpt2", legacy=True))
    assert info.info.id == "openai-community/gpt2" and info.info.sha == commit
    hub.reset()
    async with Engine(config) as engine:
        result = await engine.pull(RepoRef.parse("model", "gpt2", legacy=True), PullOptions())
    assert result.repo == "gpt2" and result.commit == commit
    # The official client keys its cache by the id it was given: models--gpt2.
    snap = config.hub_cache / "models--gpt2" / "snapshots" / commit
    assert {p: (snap / p).read_bytes() for p in files} == files
    assert (config.hub_cache / "models--gpt2" / "refs" / "main").read_text() == commit
    # One redirect for the info call; the files are then asked for under the canonical id.
    stats = hub.stats()
    assert stats.count("legacy") == 1
    assert stats.count("resolve") >= 1 and not [p for p in stats.by_path if p.startswith("/gpt2/")]


@pytest.mark.anyio
async def test_legacy_dataset_id_to_a_folder(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("rajpurkar/squad", {"train.json": b'{"q": 1}'}, repo_type="dataset")
    hub.add_alias("squad", "rajpurkar/squad", repo_type="dataset")
    async with Engine(cfg(hub)) as engine:
        ref = RepoRef.parse("dataset", "squad", legacy=True)
        await engine.pull(ref, PullOptions(output=tmp_path / "data"))
    assert (tmp_path / "data" / "train.json").read_bytes() == b'{"q": 1}'


@pytest.mark.anyio
async def test_empty_revision_is_refused_before_anything_is_written(hub: LocalHub) -> None:
    hub.add_repo("acme/tiny", {"config.json": b"{}"})
    config = cfg(hub)
    with pytest.raises(UsageError, match="invalid revision ''"):
        await do_pull(config, "acme/tiny", revision="")
    async with Engine(config) as engine:
        with pytest.raises(UsageError, match="invalid revision ''"):
            await engine.info(RepoRef.parse("model", "acme/tiny"), "")
    assert not (config.hub_cache / "models--acme--tiny").exists()
    assert hub.stats().total == 0


@pytest.mark.anyio
async def test_globs_that_match_nothing_are_a_usage_error(hub: LocalHub) -> None:
    hub.add_repo("acme/tiny", {"config.json": b"{}", "model.safetensors": b"w" * 100})
    config = cfg(hub)
    with pytest.raises(UsageError, match=r"no file of acme/tiny matches --include 'nomatch\*'"):
        await do_pull(config, "acme/tiny", include=("nomatch*",))
    with pytest.raises(UsageError, match="--exclude '\\*'"):
        await do_pull(config, "acme/tiny", exclude=("*",))
    # A glob that keeps something is fine, even when other rules then drop files.
    done = await do_pull(config, "acme/tiny", include=("*.json",))
    assert [f.path for f in done.files] == ["config.json"]


@pytest.mark.anyio
async def test_offline_folder_pull_names_what_it_cannot_answer(hub: LocalHub, tmp_path: Path) -> None:
    commit = hub.add_repo(
        "acme/quant", {"README.md": b"#", "m.Q4_K_M.gguf": b"q" * 10, "m.Q8_0.gguf": b"q" * 20}
    )
    out = tmp_path / "gguf"
    await do_pull(cfg(hub), "acme/quant", output=out, quantization="Q4_K_M")
    offline = cfg(hub, offline=True)
    with pytest.raises(OfflineError, match=r"offline mode .*Q8_0"):
        await do_pull(offline, "acme/quant", output=out, quantization="Q8_0")
    again = await do_pull(offline, "acme/quant", output=out, quantization="Q4_K_M")
    assert again.commit == commit and sorted(f.path for f in again.files) == ["README.md", "m.Q4_K_M.gguf"]


def _wrong_shapes(path: str) -> object:
    if "/tree/" in path:
        return [{"type": "file", "path": 7}, "not an entry"]
    return {"id": "acme/x", "sha": "a" * 40, "siblings": "notalist"}


@pytest.mark.anyio
async def test_json_of_the_wrong_shape_is_a_protocol_error(tmp_path: Path) -> None:
    with json_endpoint(_wrong_shapes) as url:
        config = load_config({"HF_HOME": str(tmp_path)}, endpoint=url)
        async with Engine(config) as engine:
            ref = RepoRef.parse("model", "acme/x")
            with pytest.raises(ProtocolError, match="does not answer like a Hub"):
                await engine.info(ref)
            with pytest.raises(ProtocolError, match="does not answer like a Hub"):
                await engine.api.list_tree(ref, "main")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("field", "value"),
    [("sha", "../../../../escaped"), ("blobId", "../../x"), ("lfs", {"sha256": "../" * 3 + "y", "size": 3})],
)
async def test_ids_that_would_name_paths_outside_the_cache_are_refused(
    tmp_path: Path, field: str, value: object
) -> None:
    def answer(path: str) -> object:
        sibling: dict[str, object] = {"rfilename": "a.txt", "size": 3, "blobId": "b" * 40, field: value}
        info: dict[str, object] = {"id": "acme/x", "sha": "a" * 40, "siblings": [sibling]}
        if field == "sha":
            info["sha"] = value
        return info

    with json_endpoint(answer) as url:
        config = load_config({"HF_HOME": str(tmp_path / "home")}, endpoint=url)
        async with Engine(config) as engine:
            with pytest.raises(ProtocolError, match="malformed"):
                await engine.pull(RepoRef.parse("model", "acme/x"), PullOptions())
    assert _named(tmp_path.parent, "escaped", "y") == []


def _named(root: Path, *names: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.name in names]


class _BadRedirect(BaseHTTPRequestHandler):
    """A Hub whose resolve answers a redirect to a URL nothing can be requested from."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        big = {
            "rfilename": "w.safetensors",
            "size": 64 << 20,
            "blobId": "b" * 40,
            "lfs": {"sha256": "c" * 64},
        }
        body = json.dumps({"id": "acme/x", "sha": "a" * 40, "siblings": [big]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(302)
        self.send_header("Location", "http://[::1/x")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.anyio
async def test_ranged_pull_with_an_unusable_redirect_is_a_protocol_error(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BadRedirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = load_config({"HF_HOME": str(tmp_path)}, endpoint=url, retry=FAST)
        async with Engine(config) as engine:
            with pytest.raises(ProtocolError, match="unusable URL"):
                await engine.pull(RepoRef.parse("model", "acme/x"), PullOptions())
    finally:
        server.shutdown()
        server.server_close()

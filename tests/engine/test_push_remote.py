"""push decisions that depend on the remote revision and on request counts: the README already on
the Hub, preupload batching, and the pull request a `create_pr` push opens."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import _push as push_mod
from engine._upload import pr_revision
from engine.testing.hub import LocalHub
from tests.engine.test_push import READER, REPO, WRITER, age, cfg, do_push, front_matter, model_folder

HAND_WRITTEN = b"---\nlicense: mit\n---\n\n# demo\n\nWritten on the Hub by hand.\n"
# huggingface_hub 2.4 `_commit_api._fetch_upload_modes`: `chunk_iterable(additions, 256)`.
OFFICIAL_PREUPLOAD_BATCH = 256


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread() as h:
        h.add_token(WRITER, user="acme", role="write")
        h.add_token(READER, user="acme", role="read")
        yield h


# ---- README on the Hub ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_readme_on_the_hub_is_kept_when_the_folder_has_none(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"README.md": HAND_WRITTEN, "config.json": "{}"})
    folder = model_folder(tmp_path)
    result = await do_push(cfg(hub), folder, license="apache-2.0")
    assert (hub.repo_dir(REPO) / "README.md").read_bytes() == HAND_WRITTEN
    assert result.card_kept and not result.card_generated
    assert {f.path: f.action for f in result.files}["README.md"] == "unchanged"
    assert len(result.commits) == 1  # the rest of the folder was still pushed
    # `--delete` mirrors the folder, but the README belongs to the card rule: it stays.
    gone = await do_push(cfg(hub), folder, delete=True)
    assert [f.path for f in gone.by_action("delete")] == []
    assert (hub.repo_dir(REPO) / "README.md").read_bytes() == HAND_WRITTEN


@pytest.mark.anyio
async def test_a_readme_on_the_pushed_branch_counts_not_one_on_another(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"config.json": "{}"})
    hub.add_repo(REPO, {"README.md": HAND_WRITTEN}, revision="dev")
    folder = model_folder(tmp_path)
    on_dev = await do_push(cfg(hub), folder, revision="dev")
    assert (
        on_dev.card_kept and (hub.repo_dir(REPO, revision="dev") / "README.md").read_bytes() == HAND_WRITTEN
    )
    on_main = await do_push(cfg(hub), folder)
    assert on_main.card_generated and not on_main.card_kept
    assert front_matter((hub.repo_dir(REPO) / "README.md").read_text())["license"] == "other"


@pytest.mark.anyio
async def test_no_readme_anywhere_still_gets_a_card_and_a_re_push_keeps_it(
    hub: LocalHub, tmp_path: Path
) -> None:
    folder = model_folder(tmp_path)
    first = await do_push(cfg(hub), folder, license="mit")
    assert first.card_generated and not first.card_kept
    card = (hub.repo_dir(REPO) / "README.md").read_bytes()
    assert front_matter(card.decode())["license"] == "mit"
    (folder / "extra.txt").write_text("more\n")
    again = await do_push(cfg(hub), folder, license="apache-2.0")
    assert again.card_kept and [f.path for f in again.by_action("add")] == ["extra.txt"]
    assert (hub.repo_dir(REPO) / "README.md").read_bytes() == card


@pytest.mark.anyio
async def test_no_card_with_delete_removes_a_readme_the_folder_lacks(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"README.md": HAND_WRITTEN, "config.json": "{}"})
    folder = model_folder(tmp_path)
    result = await do_push(cfg(hub), folder, card=False, delete=True)
    assert [f.path for f in result.by_action("delete")] == ["README.md"] and not result.card_kept
    assert not (hub.repo_dir(REPO) / "README.md").exists()


@pytest.mark.anyio
async def test_dry_run_shows_the_remote_readme_as_unchanged(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"README.md": HAND_WRITTEN})
    plan = await do_push(cfg(hub), model_folder(tmp_path), dry_run=True)
    assert plan.card_kept and {f.path: f.action for f in plan.files}["README.md"] == "unchanged"
    assert hub.stats().writes == 0


# ---- preupload batching --------------------------------------------------------------------------


def small_files(root: Path, n: int) -> Path:
    folder = root / "many"
    folder.mkdir()
    for i in range(n):
        (folder / f"f{i:04d}.txt").write_text(f"file {i}\n")
    age(folder)
    return folder


@pytest.mark.anyio
async def test_1001_files_take_one_preupload_call_per_256(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A loaded machine may take more than the batch's usual wait to hash them all.
    monkeypatch.setattr(push_mod, "PREUPLOAD_WAIT_S", 60.0)
    result = await do_push(cfg(hub), small_files(tmp_path, 1001), card=False)
    assert len(result.by_action("add")) == 1001
    assert hub.stats().count("preupload", "POST") == math.ceil(1001 / OFFICIAL_PREUPLOAD_BATCH) == 4


@pytest.mark.anyio
async def test_a_batch_holding_enough_bytes_goes_without_waiting_for_256_files(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At one byte, every file is past the threshold: each is preuploaded (and sent) on its own.
    monkeypatch.setattr(push_mod, "PREUPLOAD_FLUSH_BYTES", 1)
    await do_push(cfg(hub), small_files(tmp_path, 5), card=False)
    assert hub.stats().count("preupload", "POST") == 5


# ---- pull requests -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_pr_reports_the_pull_request_and_its_ref(hub: LocalHub, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    await do_push(cfg(hub), folder, card=False)
    (folder / "config.json").write_text('{"pr": 1}')
    first = await do_push(cfg(hub), folder, create_pr=True, card=False)
    assert first.revision == "main" and first.pr_revision == "refs/pr/1" and first.pr_number == 1
    assert first.pr_url is not None and first.pr_url.endswith("/discussions/1")
    assert first.head == hub.head(REPO, revision="refs/pr/1") != hub.head(REPO)
    (folder / "config.json").write_text('{"pr": 2}')
    second = await do_push(cfg(hub), folder, create_pr=True, card=False)
    assert (second.pr_revision, second.pr_number) == ("refs/pr/2", 2)
    assert (hub.repo_dir(REPO, revision="refs/pr/2") / "config.json").read_text() == '{"pr": 2}'


def test_pr_revision_follows_the_official_pattern() -> None:
    assert pr_revision("https://huggingface.co/acme/m1/discussions/12") == "refs/pr/12"
    assert pr_revision("http://127.0.0.1:1/datasets/acme/d/discussions/3") == "refs/pr/3"
    assert pr_revision("https://huggingface.co/acme/m1/discussions/") is None
    assert pr_revision("https://huggingface.co/acme/m1/commit/abc") is None

"""`batuta hf push`: publish a local folder (or one file) to a Hub repo, sending only what changed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.hf import AssetArg, JsonOpt, hf

if TYPE_CHECKING:
    from engine import Engine, RepoRef, SecretsFoundError
    from engine._pushtypes import PushOptions, PushResult


@hf.command()
def push(
    ctx: typer.Context,
    asset: AssetArg,
    path: Annotated[
        Path, typer.Argument(help="Local folder (or single file) to upload.", show_default=False)
    ],
    repo: Annotated[
        str, typer.Option("--repo", help="Target repository id, e.g. acme/tiny.", show_default=False)
    ],
    message: Annotated[str | None, typer.Option("--message", "-m", help="Commit message.")] = None,
    description: Annotated[
        str, typer.Option("--commit-description", help="Commit description (the message's body).")
    ] = "",
    path_in_repo: Annotated[
        str,
        typer.Option(
            "--path-in-repo",
            metavar="REPO_PATH",
            help="Repo folder to upload the folder into, or the repo path of a single file"
            " (default: the repo root / the file's name).",
        ),
    ] = "",
    revision: Annotated[
        str, typer.Option("--revision", help="Branch to commit to (created if missing).")
    ] = "main",
    private: Annotated[
        bool, typer.Option("--private", help="Create the repo as private if it does not exist.")
    ] = False,
    create_pr: Annotated[
        bool, typer.Option("--create-pr", help="Open a pull request instead of committing.")
    ] = False,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Only push paths matching this glob (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Leave out paths matching this glob (repeatable).")
    ] = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete remote files that are gone locally.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; send nothing.")] = False,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    no_card: Annotated[
        bool, typer.Option("--no-card", help="Do not generate a model card (README.md).")
    ] = False,
    license: Annotated[
        str | None, typer.Option("--license", help="License id for the generated model card.")
    ] = None,
) -> None:
    """Upload a folder or a file: secret scan first, then only new or changed files (LFS for large ones)."""
    from cli import _push_render as view
    from cli.errors import ExitCode
    from cli.runner import fail, guard, load, run_engine, verbose
    from engine import RepoRef, SecretsFoundError
    from engine._pushtypes import PushOptions

    ref = guard(lambda: RepoRef.parse(asset, repo))
    # The CLI's entry points are guarded against re-import, so the scan may spawn workers.
    config = load(ctx, scan_processes=max(1, os.cpu_count() or 1))
    options = PushOptions(
        revision=revision,
        message=message,
        description=description,
        path_in_repo=path_in_repo,
        private=private,
        create_pr=create_pr,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        delete=delete,
        dry_run=dry_run,
        card=not no_card,
        license=license,
    )
    # HF_HUB_DISABLE_PROGRESS_BARS silences the display as --quiet does, as for pull.
    silent = as_json or quiet or not config.progress_bars
    with view.push_progress(enabled=not silent, verbose=verbose(ctx)) as on_event:
        outcome = run_engine(config, lambda engine: _call(engine, ref, path, options), on_event)
    if isinstance(outcome, SecretsFoundError):
        view.secrets_found(outcome)
        n = len(outcome.findings)
        fail(
            f"refusing to push: {n} possible secret{'s' if n != 1 else ''} found; "
            "remove them or leave them out with --exclude",
            ExitCode.SECRETS_FOUND,
            findings=outcome.findings,
        )
    view.push_summary(outcome, as_json=as_json)


async def _call(
    engine: Engine, ref: RepoRef, folder: Path, options: PushOptions
) -> PushResult | SecretsFoundError:
    """The push, with secret findings returned instead of raised so every finding can be listed."""
    from engine import SecretsFoundError

    try:
        return await engine.push(ref, folder, options)
    except SecretsFoundError as exc:
        return exc

"""`batuta hf ...`: parse arguments, call the engine once, hand the result to render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

hf = typer.Typer(
    help="Hugging Face Hub commands: tree, search, info, pull, push, serve.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Write one JSON document on stdout.")]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="Branch, tag or commit (default: main).")]
AssetArg = Annotated[str, typer.Argument(help="Asset type: model, dataset or space.", show_default=False)]


@hf.command()
def tree(
    integration: Annotated[
        bool, typer.Option("--integration", help="Show the PAIML <-> Hugging Face integration map.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="Output format: ascii or json.")] = "ascii",
) -> None:
    """Display the Hugging Face ecosystem tree, or the PAIML integration map."""
    from cli import render
    from cli.errors import ExitCode
    from cli.runner import fail

    if fmt not in ("ascii", "json"):
        fail(f"unknown format '{fmt}' (expected ascii or json)", ExitCode.USAGE)
    render.ecosystem(integration=integration, as_json=fmt == "json")


@hf.command()
def search(
    ctx: typer.Context,
    asset: AssetArg,
    query: Annotated[str, typer.Argument(help="Search text (substring of the repo id).")],
    task: Annotated[
        str | None, typer.Option("--task", help="Pipeline tag (models) or task category (datasets).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Maximum number of results.")] = 10,
    author: Annotated[
        str | None, typer.Option("--author", help="Only repos of this user or organisation.")
    ] = None,
    sort: Annotated[str | None, typer.Option("--sort", help="downloads, likes or updated.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search models, datasets or spaces."""
    from cli import render
    from cli.runner import guard, load, run_engine, verbose
    from engine import parse_repo_type

    repo_type = guard(lambda: parse_repo_type(asset))
    config = load(ctx)
    hits = run_engine(
        config,
        lambda e: e.search(repo_type, query, limit=limit, author=author, task=task, sort=sort),
        render.wait_notes(verbose=verbose(ctx)),
    )
    render.search_results(repo_type, hits, as_json=as_json)


@hf.command()
def info(
    ctx: typer.Context,
    asset: AssetArg,
    repo_id: Annotated[str, typer.Argument(help="Repository id, e.g. acme/tiny.")],
    revision: RevisionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a repo's metadata and files, with sizes, LFS and safety marks."""
    from cli import render
    from cli.runner import guard, load, run_engine, verbose
    from engine import RepoRef

    ref = guard(lambda: RepoRef.parse(asset, repo_id, legacy=True))
    config = load(ctx)
    result = run_engine(config, lambda e: e.info(ref, revision), render.wait_notes(verbose=verbose(ctx)))
    render.repo_info(result, as_json=as_json)


@hf.command()
def serve(
    root: Annotated[Path, typer.Option("--root", help="Folder holding the repos to serve.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    # Ranges checked by click: a usage error (exit 2) instead of an OverflowError from bind().
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="API port (0 = any free port).")] = 0,
    blob_port: Annotated[
        int, typer.Option("--blob-port", min=0, max=65535, help="Port of the CDN-like blob listener.")
    ] = 0,
) -> None:
    """Serve a folder of repos with the Hub's HTTP protocol (for air-gapped mirrors and tests)."""
    from cli import render
    from cli.errors import ExitCode
    from cli.runner import fail

    if not root.is_dir():
        fail(f"--root '{root}' is not a folder", ExitCode.USAGE)
    from engine.server import config_problem, serve_forever

    if (why := config_problem(root)) is not None:
        fail(why, ExitCode.USAGE)

    # The server itself enables its test routes (/_batuta/...) under BATUTA_SERVE_TESTING=1 and
    # returns on Ctrl-C.
    try:
        serve_forever(root, host=host, port=port, blob_port=blob_port, on_ready=render.server_ready)
    except OSError as exc:
        fail(exc.strerror or str(exc), ExitCode.FAILURE)  # the server names the address it could not take


def parse_rate(text: str) -> float:
    """`50M`, `1G`, `800K`, `1.5G` or plain bytes per second (K/M/G are powers of 1024, as aria2c)."""
    from engine import UsageError

    units = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("/S").removesuffix("IB").removesuffix("B")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in "KMG" else (t, "")
    try:
        value = float(num) * units[unit]
    except ValueError:
        raise UsageError(f"invalid rate '{text}' (examples: 50M, 1G, 800K)") from None
    if value <= 0:
        raise UsageError(f"--max-rate must be positive, got '{text}'")
    return value


def folder_path(value: str) -> Path:
    """The parser of a folder option: an empty value (`-o ""`, an unset variable) is refused, as
    Path("") would silently be the current folder."""
    if not value:
        raise typer.BadParameter("an empty path is not a folder (write . for the current one)")
    return Path(value)


def check_folder(output: Path, option: str = "--output") -> None:
    """Refuse a folder option that is, or lies under, something other than a folder, before any request.

    Found later, mkdir fails with a bare `File exists` (exit 1) after the repo was already listed.
    """
    from cli.errors import ExitCode
    from cli.runner import fail

    for path in (output, *output.parents):
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as exc:  # a name too long, a folder we may not look into
            fail(f"{option} '{output}': {exc.strerror or exc}", ExitCode.USAGE)
        if exists:
            if not is_dir:
                where = "" if path == output else f" ('{path}' is a file)"
                fail(f"{option} '{output}' is not a folder{where}", ExitCode.USAGE)
            return


@hf.command()
def pull(
    ctx: typer.Context,
    asset: AssetArg,
    repo_id: Annotated[str, typer.Argument(help="Repository id, e.g. TheBloke/Llama-2-7B-GGUF.")],
    files: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only these files (exact repo paths, e.g. config.json); default: the whole repo."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            parser=folder_path,
            metavar="DIR",
            help="Plain folder to write to (default: the HF cache).",
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            parser=folder_path,
            metavar="DIR",
            help="HF cache folder to use (default: HF_HUB_CACHE, else HF_HOME/hub).",
        ),
    ] = None,
    revision: Annotated[str, typer.Option("--revision", help="Branch, tag or commit.")] = "main",
    quantization: Annotated[
        str | None, typer.Option("--quantization", help="Keep only this GGUF quantization, e.g. Q4_K_M.")
    ] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Glob of repo paths to keep (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Glob of repo paths to skip (repeatable).")
    ] = None,
    allow_unsafe: Annotated[
        bool,
        typer.Option("--allow-unsafe", help="Also download pickle-based weights (.bin, .pt, .pkl, ...)."),
    ] = False,
    force_download: Annotated[
        bool,
        typer.Option(
            "--force-download", help="Fetch and verify every selected file again, even when present."
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; transfer nothing.")] = False,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    max_connections: Annotated[
        int | None, typer.Option("--max-connections", help="Cap on simultaneous connections.")
    ] = None,
    max_rate: Annotated[
        str | None, typer.Option("--max-rate", help="Cap on bytes per second, e.g. 50M, 1G.")
    ] = None,
) -> None:
    """Download a model, dataset or space: parallel, verified, resumable."""
    from cli import render
    from cli.errors import ExitCode
    from cli.runner import fail, guard, load, run_engine, verbose
    from engine import RepoRef
    from engine._pull import PullOptions

    ref = guard(lambda: RepoRef.parse(asset, repo_id, legacy=True))
    if output is not None:
        check_folder(output)
        output = output.absolute()  # stdout and --json name it absolute, as hf download prints it
    overrides: dict[str, object] = {}
    if max_connections is not None:
        if max_connections <= 0:
            fail("--max-connections must be a positive number", ExitCode.USAGE)
        overrides["max_connections"] = max_connections
    if max_rate is not None:
        overrides["max_rate_bytes_s"] = guard(lambda: parse_rate(max_rate))
    if cache_dir is not None:
        cache_dir = cache_dir.expanduser().absolute()
        check_folder(cache_dir, "--cache-dir")
        overrides["hub_cache"] = cache_dir
    config = load(ctx, **overrides)
    options = PullOptions(
        revision=revision,
        output=output,
        paths=tuple(dict.fromkeys(f.removeprefix("./") for f in files or ())),
        force=force_download,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        quantization=quantization,
        allow_unsafe=allow_unsafe,
        dry_run=dry_run,
    )
    # HF_HUB_DISABLE_PROGRESS_BARS silences the display as --quiet does; notices and the summary stay.
    silent = quiet or as_json or dry_run or not config.progress_bars
    with render.transfer_progress(quiet=silent, verbose=verbose(ctx)) as on_event:
        result = run_engine(config, lambda e: e.pull(ref, options), on_event)
    render.pull_summary(result, as_json=as_json, named=options.paths)

"""The typer root `batuta`, global options, and the one-line error contract of `main()`."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Annotated

import click
import typer

import cli.push  # noqa: F401 - registers `hf push` on the hf sub-app
from cli.hf import hf

app = typer.Typer(
    name="batuta",
    help="batuta: fast, safe transfers to and from the Hugging Face Hub.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(hf, name="hf")


@dataclass
class GlobalOptions:
    endpoint: str | None = None
    token: str | None = None
    verbose: bool = False


@app.callback()
def root(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Hub URL (overrides HF_ENDPOINT).", show_default=False)
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Hub token (overrides HF_TOKEN and the token file).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show retries and waits.")] = False,
) -> None:
    """batuta: fast, safe transfers to and from the Hugging Face Hub."""
    ctx.obj = GlobalOptions(endpoint, token, verbose)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors become one line on stderr and exit code 2."""
    try:
        code = app(args=argv, standalone_mode=False)
    except KeyboardInterrupt:  # outside the command, where typer does not look
        code = 130
    except OSError as exc:
        # Writing the output failed (`> /dev/full`, a disk that filled up). A closed pipe never
        # gets here: typer answers EPIPE itself.
        _silence_stdout()
        typer.echo(f"error: cannot write the output: {exc.strerror or exc}", err=True)
        sys.exit(1)
    except click.exceptions.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else "", err=False)
        sys.exit(0)
    except click.UsageError as exc:
        message = exc.format_message()
        if "--json" in (sys.argv[1:] if argv is None else argv):
            # Found before any command ran, yet a script asked for a document: give it one.
            from cli.render import emit_json

            emit_json({"error": {"message": message, "exit_code": 2}})
        typer.echo(f"error: {message}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    # Without standalone mode, typer *returns* the code of a Ctrl-C inside a command (130) rather
    # than raising it: exiting 0 there would call an interrupted pull a success.
    if code == 130:
        typer.echo("error: interrupted", err=True)
    if isinstance(code, int) and code:
        sys.exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of what failed cannot fail again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)

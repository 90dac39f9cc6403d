"""batuta's command-line front end (typer). Heavy modules are imported lazily inside commands."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """The `batuta` console script: a Ctrl-C while the CLI is still loading is one line, too."""
    try:
        from cli.app import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    run(argv)

"""`python -m engine.server --root DIR`: the server without the CLI (used by ServerProcess).

`--ready-file PATH` receives `{"url": ..., "blob_url": ..., "pid": ...}` once both listeners
are up, so a parent process learns the ports the OS picked without parsing any output.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields, replace
from pathlib import Path

from engine.server import ServerConfig, serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine.server")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--blob-port", type=int, default=0)
    parser.add_argument("--testing", action="store_true")
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--config", default="{}", help="JSON object of ServerConfig fields")
    args = parser.parse_args(argv)

    known = {f.name for f in fields(ServerConfig)} - {"root", "host", "port", "blob_port", "testing"}
    overrides = {k: v for k, v in json.loads(args.config).items() if k in known}
    config = replace(ServerConfig(root=args.root), **overrides)

    def on_ready(url: str, blob_url: str) -> None:
        if args.ready_file is not None:
            tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
            tmp.write_text(json.dumps({"url": url, "blob_url": blob_url, "pid": os.getpid()}))
            os.replace(tmp, args.ready_file)

    serve_forever(
        args.root,
        args.host,
        args.port,
        blob_port=args.blob_port,
        testing=args.testing,
        on_ready=on_ready,
        config=config,
    )


if __name__ == "__main__":
    main()

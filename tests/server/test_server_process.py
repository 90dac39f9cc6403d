"""ServerProcess: the server in a subprocess, driven over the admin routes."""

from __future__ import annotations

import os
from pathlib import Path

from engine.testing import ServerProcess
from engine.testing.http import fetch


def test_server_process_serves_and_takes_switches(tmp_path: Path) -> None:
    blob = os.urandom(20_000)
    with ServerProcess(tmp_path / "root", list_page_size=2) as hub:
        assert hub.url.startswith("http://127.0.0.1:") and hub.blob_url.startswith("http://localhost:")
        sha = hub.add_repo("acme/tiny", {"w.safetensors": blob, "a.txt": "a"})
        hub.add_token("hf_x", user="acme", role="write")
        info = fetch("GET", f"{hub.url}/api/models/acme/tiny", token="hf_x")
        assert info.status == 200 and sha in info.body.decode()
        hub.fail(status=503, times=1, path_contains="/resolve/")
        assert fetch("HEAD", f"{hub.url}/acme/tiny/resolve/main/a.txt").status == 503
        location = fetch("HEAD", f"{hub.url}/acme/tiny/resolve/main/w.safetensors").header("location") or ""
        hub.truncate_once(after_bytes=100)
        assert not fetch("GET", location).complete
        assert fetch("GET", location).body == blob
        stats = hub.stats()
        assert stats.faults_fired == {"503": 1, "truncate": 1} and stats.blob_bytes_sent == 100 + len(blob)
        assert stats.count("resolve", "HEAD") == 2
        hub.reset()
        assert hub.stats().total == 0  # admin requests are not counted

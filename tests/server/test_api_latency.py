"""The api_latency_s switch delays API requests (used by the small-file benchmark)."""

from __future__ import annotations

import time
import urllib.request

from engine.testing.hub import LocalHub


def test_api_latency_applies_to_resolve_and_can_be_cleared() -> None:
    with LocalHub.in_thread() as hub:
        hub.add_repo("acme/tiny", {"config.json": b"{}"})
        url = f"{hub.url}/acme/tiny/resolve/main/config.json"
        hub.throttle(api_latency_s=0.2)
        start = time.monotonic()
        with urllib.request.urlopen(url) as resp:
            assert resp.read() == b"{}"
        delayed = time.monotonic() - start
        hub.reset()
        # A lower bound is deterministic: the server sleeps before answering.
        assert delayed >= 0.2

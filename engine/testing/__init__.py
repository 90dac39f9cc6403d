"""Test harness: a real Hub-compatible server with fault switches (see `engine.testing.hub`)."""

from __future__ import annotations

from engine.server import HubStats, RequestRecord
from engine.testing.hub import LocalHub, ServerProcess

__all__ = ["HubStats", "LocalHub", "RequestRecord", "ServerProcess"]

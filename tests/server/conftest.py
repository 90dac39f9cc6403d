from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.testing import LocalHub

WRITE_TOKEN = "hf_write_alice"
READ_TOKEN = "hf_read_bob"
GATED_TOKEN = "hf_read_gated_carol"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LocalHub]:
    # Small list pages and a small multipart threshold so paging and multipart really happen.
    with LocalHub.in_thread(
        tmp_path / "root",
        list_page_size=3,
        multipart_threshold_bytes=2 * 1024 * 1024,
        multipart_chunk_bytes=1024 * 1024,
    ) as h:
        h.add_token(WRITE_TOKEN, user="alice", role="write")
        h.add_token(READ_TOKEN, user="bob", role="read")
        h.add_token(GATED_TOKEN, user="carol", role="read", gated=True)
        yield h

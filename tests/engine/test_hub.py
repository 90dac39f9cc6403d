"""The HTTP core against a LocalHub: retries, Retry-After, RateLimit headers, token hygiene."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from engine import (
    AuthRequiredError,
    Engine,
    EngineConfig,
    Event,
    HostPaused,
    HubServerError,
    NotFoundError,
    RateLimitedError,
    RepoRef,
    RetryPolicy,
    RetryScheduled,
    TransferTimeoutError,
    TransportError,
    load_config,
)
from engine._hub import HubClient
from engine._pull import PullOptions
from engine.testing.hub import LocalHub

FAST = RetryPolicy(base_s=0.01, cap_s=0.05)
TOKEN = "hf_secret_token_never_to_be_printed_00"


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread(rate_limit_window_s=2) as h:
        h.add_token(TOKEN, user="acme", role="read")
        h.add_repo("acme/tiny", {"config.json": b"{}"})
        yield h


def cfg(hub: LocalHub, **kw: Any) -> EngineConfig:
    return load_config(os.environ, endpoint=hub.url, **{"retry": FAST, **kw})


def statuses(hub: LocalHub) -> list[int]:
    return [r.status for r in hub.stats().requests]


@pytest.mark.anyio
async def test_503s_are_retried_with_growing_attempts(hub: LocalHub) -> None:
    hub.fail(status=503, times=2, path_contains="/api/models/acme/tiny")
    events: list[Event] = []
    async with Engine(cfg(hub), on_event=events.append) as engine:
        info = await engine.info(RepoRef.parse("model", "acme/tiny"))
    assert info.info.id == "acme/tiny"
    assert [e.attempt for e in events if isinstance(e, RetryScheduled)] == [1, 2]
    assert statuses(hub) == [503, 503, 200]


@pytest.mark.anyio
async def test_retries_are_capped_at_five_then_the_error_is_mapped(hub: LocalHub) -> None:
    hub.fail(status=500, times=50, path_contains="/api/models/acme/tiny")
    async with Engine(cfg(hub)) as engine:
        with pytest.raises(HubServerError, match="after retries"):
            await engine.info(RepoRef.parse("model", "acme/tiny"))
    assert statuses(hub) == [500] * 6
    hub.reset()
    hub.fail(status=429, times=50)
    async with Engine(cfg(hub)) as engine:
        with pytest.raises(RateLimitedError):
            await engine.search("model", "tiny")


@pytest.mark.anyio
async def test_other_4xx_are_not_retried(hub: LocalHub) -> None:
    async with Engine(cfg(hub, token=TOKEN)) as engine:
        with pytest.raises(NotFoundError):
            await engine.info(RepoRef.parse("model", "acme/missing"))
    async with Engine(cfg(hub)) as engine:
        with pytest.raises(AuthRequiredError, match="private, or does not exist"):
            await engine.info(RepoRef.parse("model", "acme/missing"))  # anonymous: the Hub's 401
    assert statuses(hub) == [404, 401]


@pytest.mark.anyio
async def test_a_retry_after_too_long_to_wait_fails_at_once_saying_how_long(hub: LocalHub) -> None:
    hub.fail(status=429, times=1, path_contains="/api/models/acme/tiny", retry_after="3600")
    hub.fail(status=503, times=1, path_contains="/api/models/acme/tiny", retry_after="400")
    async with Engine(cfg(hub)) as engine:
        ref = RepoRef.parse("model", "acme/tiny")
        with pytest.raises(
            RateLimitedError, match=r"rate limited by .* \(it asks to wait 1 h 0 min; try again later\)"
        ):
            await engine.info(ref)
        with pytest.raises(
            HubServerError, match=r"server error 503 .* \(it asks to wait 7 min; try again later\)"
        ):
            await engine.info(ref)
        assert engine.client.retries == 0
    assert statuses(hub) == [429, 503]


@pytest.mark.anyio
async def test_retry_after_pauses_the_whole_host_and_says_why(hub: LocalHub) -> None:
    # Retry-After above the 0.05 s cap of the schedule is still honoured in full.
    hub.fail(status=429, times=1, path_contains="/api/models/acme/tiny", retry_after="1")
    events: list[Event] = []
    tree_done_at: list[float] = []
    async with Engine(cfg(hub), on_event=events.append) as engine:
        ref = RepoRef.parse("model", "acme/tiny")
        start = anyio.current_time()

        async def second() -> None:
            await anyio.sleep(0.2)  # starts while the host is paused
            await engine.api.list_tree(ref, "main")
            tree_done_at.append(anyio.current_time() - start)

        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.info, ref)
            tg.start_soon(second)
    paused = [e for e in events if isinstance(e, HostPaused)]
    assert paused and paused[0].delay_s == 1.0 and "429" in paused[0].reason
    assert [(r.kind, r.status) for r in hub.stats().requests].count(("info", 429)) == 1
    # Sent at 0.2 s, the tree call could only go out when the host-wide pause ended (a lower
    # bound set by the pause itself, not by machine speed).
    assert tree_done_at[0] >= 1.0


@pytest.mark.anyio
async def test_ratelimit_headers_slow_the_client_before_a_429(hub: LocalHub) -> None:
    hub.set_rate_limit(api=3)
    events: list[Event] = []
    async with Engine(cfg(hub), on_event=events.append) as engine:
        for _ in range(5):
            await engine.search("model", "tiny")
    assert 429 not in statuses(hub)
    assert any(isinstance(e, HostPaused) and "rate-limit" in e.reason for e in events)


@pytest.mark.anyio
async def test_a_ratelimit_window_longer_than_the_longest_wait_is_not_waited_out() -> None:
    # A window of an hour, aligned to the clock as the Hub's: it does not end during the test.
    with LocalHub.in_thread(rate_limit_window_s=3600) as hub:
        hub.set_rate_limit(api=2)
        events: list[Event] = []
        config = cfg(hub, retry=FAST._replace(max_wait_s=0.01))
        with anyio.fail_after(30):  # waiting the window out would take up to an hour
            async with Engine(config, on_event=events.append) as engine:
                with pytest.raises(RateLimitedError, match="rate limited by"):
                    for _ in range(4):
                        await engine.search("model", "tiny")
        assert not any(isinstance(e, HostPaused) for e in events) and statuses(hub)[-1] == 429


@pytest.mark.anyio
async def test_token_goes_to_the_hub_only_and_never_into_errors(hub: LocalHub) -> None:
    hub.add_repo("acme/private", {"model.safetensors": b"x" * 100}, private=True)
    async with Engine(cfg(hub, token=TOKEN)) as engine:
        info = await engine.info(RepoRef.parse("model", "acme/private"))
        assert info.info.private
        with pytest.raises(NotFoundError) as err:
            await engine.info(RepoRef.parse("model", "acme/missing"))
    assert TOKEN not in str(err.value)
    api_requests = [r for r in hub.stats().requests if r.kind != "blob"]
    assert api_requests and all(r.authorized for r in api_requests)


@pytest.mark.anyio
async def test_offline_client_sends_nothing(hub: LocalHub) -> None:
    from engine import OfflineError

    async with HubClient(cfg(hub, offline=True)) as client:
        with pytest.raises(OfflineError):
            await client.get_json("/api/models")
    assert hub.stats().total == 0


def test_a_storage_host_refusal_says_which_way_and_never_blames_the_token() -> None:
    from engine._hub import Ctx, HubResponse
    from engine._huberrors import map_error

    expired = HubResponse(403, {}, b"", "https://cdn.example/blobs/abc?X-Signature=s3cr3t")
    err = map_error(expired, Ctx("acme/x", "main", "model.safetensors"), has_token=False, on_hub=False)
    assert str(err) == "https://cdn.example refused the download of model.safetensors (HTTP 403)"
    put = HubResponse(403, {}, b"", "https://store.example/upload/abc/1?sig=s3cr3t")
    err = map_error(put, Ctx(), has_token=False, on_hub=False, transfer="upload")
    assert (
        str(err)
        == "https://store.example refused the upload of https://store.example/upload/abc/1 (HTTP 403)"
    )
    assert "token" not in str(err) and "s3cr3t" not in str(err)


@contextlib.contextmanager
def refusing_endpoint() -> Iterator[str]:
    """A port held bound but not listening: every connect is refused, and no one else takes it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@contextlib.contextmanager
def unanswered_endpoint() -> Iterator[str]:
    """A listener whose accept queue is full: the kernel drops new SYNs, so a connect times out."""
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(socket.socket())
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        address = server.getsockname()
        for _ in range(8):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
        yield f"http://127.0.0.1:{address[1]}"


class Asked:
    """An `answered_locally` callback that records each time it is asked."""

    def __init__(self, answer: bool) -> None:
        self.answer, self.times = answer, 0

    def __call__(self) -> bool:
        self.times += 1
        return self.answer


@pytest.mark.anyio
@pytest.mark.parametrize("endpoint", [refusing_endpoint, unanswered_endpoint])
async def test_a_local_answer_ends_the_retries_when_no_connection_can_be_opened(
    endpoint: Any,
) -> None:
    events: list[Event] = []
    with endpoint() as url:
        config = load_config(os.environ, endpoint=url, retry=FAST, connect_timeout_s=0.2)
        async with HubClient(config, events.append) as client:
            local = Asked(True)
            with pytest.raises(TransportError, match=r"after 1 attempt\b"):
                await client.get_json("/api/models/acme/tiny", answered_locally=local)
            assert local.times == 1 and client.retries == 0 and events == []
            # Nothing on disk to answer with: the whole retry schedule, and the question asked once.
            nothing = Asked(False)
            with pytest.raises(TransportError, match="after 6 attempts"):
                await client.get_json("/api/models/acme/tiny", answered_locally=nothing)
            assert nothing.times == 1
    assert [e.attempt for e in events if isinstance(e, RetryScheduled)] == [1, 2, 3, 4, 5]


@pytest.mark.anyio
async def test_a_server_that_answers_5xx_is_retried_even_with_a_local_answer(hub: LocalHub) -> None:
    hub.fail(status=503, times=50, path_contains="/api/models/acme/tiny")
    local = Asked(True)
    async with HubClient(cfg(hub)) as client:
        with pytest.raises(HubServerError):
            await client.get_json("/api/models/acme/tiny", answered_locally=local)
        assert client.retries == 5
    assert local.times == 0 and statuses(hub) == [503] * 6


@pytest.mark.anyio
async def test_hf_hub_etag_timeout_bounds_metadata_requests_not_downloads(
    hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("acme/weights", {"model.safetensors": os.urandom(64 * 1024)})
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "0.3")
    ref = RepoRef.parse("model", "acme/weights")
    events: list[Event] = []
    async with Engine(cfg(hub), on_event=events.append) as engine:
        hub.throttle(latency_s=1.0)  # the file's bytes start after 1 s: a download, not metadata
        result = await engine.pull(ref, PullOptions())
        assert result.downloaded == ["model.safetensors"] and retries_in(events) == []
        hub.throttle(api_latency_s=1.0)  # every API answer takes 1 s
        with pytest.raises(TransferTimeoutError, match="did not answer in time after 6 attempts"):
            await engine.info(ref)
    assert [e.reason for e in retries_in(events)] == ["timeout"] * 5


def retries_in(events: list[Event]) -> list[RetryScheduled]:
    return [e for e in events if isinstance(e, RetryScheduled)]

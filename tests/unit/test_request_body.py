"""Reading and discarding a request body: what is read, what is left, and what that means."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from notifactor.gateway.http import DISCARD_BODY_TIMEOUT_S, Request, Response
from notifactor.gateway.problems import ProblemError


class Body:
    """An ASGI ``receive`` that hands out the given messages, then waits forever."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.messages = list(messages)
        self.received = 0

    async def __call__(self) -> dict[str, Any]:
        if not self.messages:
            await trio.sleep_forever()
        self.received += 1
        return self.messages.pop(0)


def chunk(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


def request(receive: Body, **headers: str) -> Request:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request(scope={"type": "http", "headers": raw}, receive=receive)


async def test_a_request_without_a_body_has_nothing_to_discard() -> None:
    receive = Body()
    assert await request(receive).discard_body(100)
    assert receive.received == 0
    assert await request(receive, content_length="0").discard_body(100)
    assert receive.received == 0


async def test_an_unread_body_within_the_limit_is_read_and_dropped() -> None:
    receive = Body(chunk(b"abc", True), chunk(b"de", False))
    req = request(receive, content_length="5")
    assert await req.discard_body(5)
    assert receive.received == 2
    assert await req.discard_body(5)  # a second call reads nothing more
    assert receive.received == 2


async def test_a_chunked_body_is_read_to_its_end() -> None:
    receive = Body(chunk(b"x" * 10, True), chunk(b"", False))
    assert await request(receive, transfer_encoding="chunked").discard_body(10)
    assert receive.received == 2


async def test_a_declared_length_over_the_limit_is_left_unread() -> None:
    receive = Body(chunk(b"x", False))
    assert not await request(receive, content_length="101").discard_body(100)
    assert receive.received == 0


@pytest.mark.parametrize("length", ["", "-1", "12x"])
async def test_a_malformed_length_is_left_unread(length: str) -> None:
    receive = Body(chunk(b"x", False))
    assert not await request(receive, content_length=length).discard_body(100)
    assert receive.received == 0


async def test_a_chunked_body_growing_past_the_limit_stops_being_read() -> None:
    receive = Body(chunk(b"x" * 60, True), chunk(b"x" * 60, True), chunk(b"x", False))
    assert not await request(receive, transfer_encoding="chunked").discard_body(100)
    assert receive.received == 2


async def test_a_client_gone_mid_body_leaves_it_unread() -> None:
    receive = Body(chunk(b"x", True), {"type": "http.disconnect"})
    assert not await request(receive, content_length="5").discard_body(100)


async def test_a_slow_body_is_given_up_after_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    receive = Body(chunk(b"x", True))
    started = trio.current_time()
    assert not await request(receive, content_length="5").discard_body(100)
    assert trio.current_time() - started == pytest.approx(DISCARD_BODY_TIMEOUT_S)


async def test_a_body_read_by_the_handler_is_not_read_again() -> None:
    receive = Body(chunk(b"{}", False))
    req = request(receive, content_length="2")
    assert await req.read_body(100) == b"{}"
    assert await req.discard_body(100)
    assert receive.received == 1


async def test_a_body_refused_by_the_handler_stays_refused() -> None:
    receive = Body(chunk(b"x" * 50, True), chunk(b"x" * 50, False))
    req = request(receive, transfer_encoding="chunked")
    with pytest.raises(ProblemError):
        await req.read_body(60)
    assert not await req.discard_body(1000)
    assert receive.received == 2


def test_a_closing_response_says_so_and_keeps_its_headers() -> None:
    response = Response(status=401, headers=(("www-authenticate", "Bearer"),))
    closing = response.closing()
    assert closing.headers == (("www-authenticate", "Bearer"), ("connection", "close"))
    assert (closing.status, closing.body) == (response.status, response.body)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"content": "caf\xe9"}', "UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "UTF-8"),
        (b'{"\xe9": 1}', "UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "deep"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "deep"),
    ],
    ids=["latin-1", "encoded-surrogate", "latin-1-key", "deep-array", "deep-object"],
)
async def test_a_body_not_utf8_or_too_deep_is_malformed_json(body: bytes, says: str) -> None:
    receive = Body(chunk(body, False))
    req = request(receive, content_type="application/json")
    with pytest.raises(ProblemError) as raised:
        await req.read_json(1_000_000)
    problem = raised.value.problem
    assert (problem.status, problem.kind) == (400, "malformed-json")
    assert says in problem.detail

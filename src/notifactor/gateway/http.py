"""The small slice of ASGI the gateway needs: requests, responses, bounded body reads."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import attrs
import msgspec
import trio

from notifactor.gateway import problems
from notifactor.gateway.problems import Problem, ProblemError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_CONTENT_TYPE = "application/json"
#: How long an answer waits for the rest of a body the handler did not read.
DISCARD_BODY_TIMEOUT_S = 1.0
_ENCODER = msgspec.json.Encoder()


@attrs.define
class Request:
    """One HTTP request: scope data plus a bounded body reader.

    Header names are lowercased; a repeated header keeps its first value.
    """

    scope: Scope
    receive: Receive
    path_params: dict[str, str] = attrs.field(factory=dict)
    headers: dict[str, str] = attrs.field(init=False)
    #: (tenant, subject) of the caller once known: the authenticated
    #: principal, or a well-signed token refused for a claim. For the audit trail.
    caller: tuple[str, str] | None = attrs.field(default=None, init=False)
    #: ``unread``, ``read`` (to its end) or ``refused`` (left unread on purpose).
    body_state: str = attrs.field(default="unread", init=False)

    def __attrs_post_init__(self) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in self.scope.get("headers", ()):
            name = raw_name.decode("latin-1").lower()
            headers.setdefault(name, raw_value.decode("latin-1"))
        self.headers = headers

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    def query(self) -> list[tuple[str, str]]:
        """Query parameters in order, percent-decoded, blanks kept."""
        raw = self.scope.get("query_string", b"").decode("latin-1")
        return parse_qsl(raw, keep_blank_values=True)

    async def read_body(self, limit: int) -> bytes:
        """The whole body, refusing (413) as soon as it grows past ``limit`` bytes.

        A ``Content-Length`` over the limit is refused before reading a byte;
        otherwise the limit is enforced on the bytes actually received, so a
        chunked or lying client cannot make the gateway buffer more.
        """
        declared = self.headers.get("content-length")
        self.body_state = "refused"  # until read to the end below
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ProblemError(problems.too_large(limit))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ProblemError(problems.too_large(limit))
            chunks.append(chunk)
            if not message.get("more_body", False):
                self.body_state = "read"
                return b"".join(chunks)

    async def discard_body(self, limit: int) -> bool:
        """Read and drop what is left of the body; whether the request is now read to its end.

        An answer given before its request was read to the end (a 401 ahead
        of the body, say) leaves the connection unusable for the next
        request. So a body of up to ``limit`` bytes that arrives within
        :data:`DISCARD_BODY_TIMEOUT_S` is read and dropped first. A larger,
        slower or refused one is left: the answer then says
        ``connection: close`` (:meth:`Response.closing`).
        """
        if self.body_state != "unread":
            return self.body_state == "read"
        self.body_state = "refused"
        declared = self.headers.get("content-length")
        if (declared is None and "transfer-encoding" not in self.headers) or declared == "0":
            self.body_state = "read"  # there is no body
            return True
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return False
        size = 0
        with trio.move_on_after(DISCARD_BODY_TIMEOUT_S):
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    return False
                size += len(message.get("body", b""))
                if size > limit:
                    return False
                if not message.get("more_body", False):
                    self.body_state = "read"
                    return True
        return False

    async def read_json(self, limit: int) -> object:
        """The body decoded as JSON, after the 415 and 413 checks (400 if not JSON)."""
        require_json_content_type(self.headers.get("content-type"))
        return decode_json(await self.read_body(limit))


def decode_json(body: bytes) -> object:
    """``body`` decoded as JSON; a 400 ``malformed-json`` problem when it cannot be.

    Besides malformed JSON, msgspec refuses two things with other exceptions:
    bytes that are not UTF-8 (``UnicodeDecodeError``) and nesting deeper than
    the interpreter's recursion limit allows (``RecursionError``). Both are
    the client's fault, so both are a 400 too, never a 500.
    """
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise ProblemError(problems.not_json(str(error))) from None
    except UnicodeDecodeError:
        raise ProblemError(problems.not_json("The body is not valid UTF-8.")) from None
    except RecursionError:
        raise ProblemError(problems.not_json("The JSON is nested too deep to decode.")) from None


class ClientGone(Exception):
    """The client disconnected before the request was read; nothing to answer."""


def require_json_content_type(value: str | None) -> None:
    """415 unless the media type is ``application/json`` or ``application/*+json``."""
    media = (value or "").split(";", 1)[0].strip().lower()
    if media == JSON_CONTENT_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return
    raise ProblemError(problems.unsupported_media_type(value))


@attrs.frozen(kw_only=True)
class Response:
    """A complete response: status, headers and body bytes."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON_CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = ()

    def closing(self) -> Response:
        """This response, telling the client the connection closes after it."""
        return attrs.evolve(self, headers=(*self.headers, ("connection", "close")))

    async def send(self, send: Send) -> None:
        raw_headers = [(b"content-length", str(len(self.body)).encode())]
        if self.content_type is not None:
            raw_headers.append((b"content-type", self.content_type.encode()))
        raw_headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers)
        await send({"type": "http.response.start", "status": self.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(
    status: int, payload: object, headers: Sequence[tuple[str, str]] = ()
) -> Response:
    return Response(status=status, body=_ENCODER.encode(payload), headers=tuple(headers))


def problem_response(problem: Problem) -> Response:
    return Response(
        status=problem.status,
        body=_ENCODER.encode(problem.to_dict()),
        content_type=problems.PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge the ASGI lifespan protocol: nothing to set up or tear down."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def is_loopback_peer(client: object) -> bool:
    """Whether an ASGI ``scope["client"]`` (host, port) is a loopback address."""
    if not isinstance(client, list | tuple) or not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback

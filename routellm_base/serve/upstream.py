"""One side's upstream: a pooled aiohttp client session with timeouts and bounded retries.

aiohttp rather than httpx: on this project's machines httpx (pure-Python HTTP/1.1) spent about
2 ms of CPU per request at 64 concurrent requests against aiohttp's 0.2 ms, which alone capped a
one-worker server far below the load target (see docs/performance.md, `routellm serve`).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import AsyncIterator, Awaitable
from types import SimpleNamespace

import aiohttp
from aiohttp.abc import AbstractStreamWriter

if sys.version_info >= (3, 11):
    from asyncio import timeout as _timeout
else:  # pragma: no cover - Python 3.10: aiohttp's own dependency there
    from async_timeout import timeout as _timeout

from .config import ServeConfig, UpstreamConfig

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Answers worth asking the same side again (OpenAI's own client retries these)."""
CALLER_ERROR_STATUSES = frozenset({400, 413, 422})
"""Answers that blame the request itself: the caller gets them as they are, with no fallback,
since the other side would refuse the same request."""
_MAX_BACKOFF_S = 4.0
_JSON_HEADERS = {"content-type": "application/json"}


class UpstreamError(Exception):
    """One side could not answer.

    ``status`` is the upstream's HTTP status (``None`` for a connection failure or timeout),
    ``timed_out`` marks timeouts (``busy`` those spent waiting for a free pooled connection),
    ``body`` keeps an error answer's bytes and ``retry_after`` its ``Retry-After`` header
    (seconds or an HTTP date, as sent) for callers to pass on.
    """

    def __init__(
        self,
        side: str,
        message: str,
        *,
        status: int | None = None,
        timed_out: bool = False,
        body: bytes = b"",
        retry_after: str | None = None,
        busy: bool = False,
    ) -> None:
        super().__init__(f"{side} upstream {message}")
        self.side = side
        self.status = status
        self.timed_out = timed_out
        self.body = body
        self.retry_after = retry_after
        self.busy = busy

    @property
    def caller_error(self) -> bool:
        """The upstream refused the request itself (see :data:`CALLER_ERROR_STATUSES`)."""
        return self.status in CALLER_ERROR_STATUSES


class Upstream:
    """``POST {base_url}/chat/completions`` on one side (or one pool model: ``side`` is then
    its name and ``upstream`` its endpoint), through one connection pool.

    Every wait is bounded (seconds, from the config): a free pooled connection, ``pool_timeout``
    (default ``timeout``) when all ``max_connections`` are busy; connecting, ``connect_timeout``;
    sending the request body, ``timeout`` (an upstream that does not read it); then each wait
    for the answer's next bytes, ``timeout``.

    Connection failures (refused, reset, a pooled connection the upstream had closed), connect
    timeouts and :data:`RETRY_STATUSES` are retried up to ``max_retries`` times with jittered
    exponential backoff (or the answer's ``Retry-After``, at most 4 s). A read or write timeout,
    or no free connection in time, is not retried: waiting again would double the wait; the
    caller falls back instead. Create it inside the running event loop; ``aclose()`` at the end.
    """

    def __init__(
        self,
        side: str,
        config: ServeConfig,
        *,
        backoff_s: float = 0.1,
        upstream: UpstreamConfig | None = None,
    ) -> None:
        if upstream is None:
            upstream = config.strong if side == "strong" else config.weak
        assert upstream is not None, f"no upstream configured for {side}"
        self.side = side
        self.model = upstream.model
        self.url = upstream.base_url.rstrip("/") + "/chat/completions"
        self.max_retries = config.max_retries
        self.timeout = config.timeout
        self.pool_timeout = config.timeout if config.pool_timeout is None else config.pool_timeout
        self.max_connections = config.max_connections
        self.backoff_s = backoff_s
        headers = {"accept-encoding": "identity"}
        key = upstream.api_key(side if side in ("strong", "weak") else f"pool model {side!r}")
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        self.session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=config.max_connections, limit_per_host=0),
            # aiohttp's `connect` bounds the wait for a pooled connection and connecting together;
            # `sock_read` starts once the body is sent (its write is bounded by _BoundedBody).
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.pool_timeout + config.connect_timeout,
                sock_connect=config.connect_timeout,
                sock_read=config.timeout,
            ),
            trace_configs=[_POOL_TRACE],
            auto_decompress=False,
            # No proxy variables or .netrc: with them aiohttp looks both up in a worker thread
            # on every request, which cost more than the rest of the upstream call.
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.session.close()

    async def open(self, payload: bytes) -> aiohttp.ClientResponse:
        """Send one request body; the answer comes back with its body unread and a 2xx status.

        Read it with :meth:`read` or :meth:`chunks`, or drop it with ``close()``. Raises
        :class:`UpstreamError`.
        """
        attempt = 0
        while True:
            body: bytes | _BoundedBody = payload
            if len(payload) > UNBOUNDED_BODY_BYTES:
                body = _BoundedBody(payload, self.timeout)
            wait = _PoolWait()
            try:
                response = await self.session.post(
                    self.url, data=body, headers=_JSON_HEADERS, trace_request_ctx=wait
                )
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                error, retry = self._unanswered(exc, body, wait)
                if retry and attempt < self.max_retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt, None))
                    continue
                raise error from exc
            if response.status < 400:
                return response
            body = await self.read(response)
            if response.status in RETRY_STATUSES and attempt < self.max_retries:
                attempt += 1
                await asyncio.sleep(self._backoff(attempt, response.headers.get("retry-after")))
                continue
            raise UpstreamError(
                self.side,
                f"answered {response.status}: {error_message(body)}",
                status=response.status,
                body=body,
                retry_after=response.headers.get("retry-after"),
            )

    def _unanswered(
        self, exc: BaseException, body: bytes | _BoundedBody, wait: _PoolWait
    ) -> tuple[UpstreamError, bool]:
        """The error of a request that got no answer, and whether it is worth another try."""
        if isinstance(body, _BoundedBody) and body.timed_out:
            message = (
                f"timed out sending the request: its {len(body.raw)}-byte body was not read "
                f"within {self.timeout:g} s"
            )
            return UpstreamError(self.side, message, timed_out=True), False
        if wait.queued:
            message = (
                f"had no free connection within {self.pool_timeout:g} s: all "
                f"{self.max_connections} of its pooled connections (--max-connections) were busy"
            )
            return UpstreamError(self.side, message, timed_out=True, busy=True), False
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return UpstreamError(self.side, "timed out connecting", timed_out=True), True
        if isinstance(exc, asyncio.TimeoutError):
            return UpstreamError(self.side, "timed out before answering", timed_out=True), False
        return UpstreamError(self.side, f"unreachable ({_describe(exc)})"), True

    async def read(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body of an open answer. Raises :class:`UpstreamError`."""
        try:
            return await response.read()
        except asyncio.TimeoutError as exc:
            raise UpstreamError(self.side, "timed out mid-answer", timed_out=True) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(self.side, f"broke off its answer ({_describe(exc)})") from exc
        finally:
            response.release()

    async def chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """An open answer's body as it arrives. Raises :class:`UpstreamError`."""
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        except asyncio.TimeoutError as exc:
            raise UpstreamError(self.side, "timed out mid-answer", timed_out=True) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(self.side, f"broke off its answer ({_describe(exc)})") from exc

    async def drain(self, response: aiohttp.ClientResponse) -> None:
        """Read what is left of an answer after its stream's ``data: [DONE]`` (normally only
        the end of its body) and drop it, so its connection goes back to the pool. Gives up
        after ``timeout`` seconds in all (the connection is then closed); never raises."""
        try:
            await asyncio.wait_for(self._read_to_end(response), self.timeout)
        except (asyncio.TimeoutError, aiohttp.ClientError):
            response.close()

    @staticmethod
    async def _read_to_end(response: aiohttp.ClientResponse) -> None:
        while await response.content.readany():
            pass
        response.release()

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), _MAX_BACKOFF_S)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        return min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S) * random.uniform(0.5, 1.0)


UNBOUNDED_BODY_BYTES = 16 * 1024
"""Request bodies up to this size are handed to the socket at once (aiohttp waits for the
socket to drain only past 64 KiB): only longer ones get a bounded write."""


class _BoundedBody(aiohttp.BytesPayload):
    """A request body whose write must end within ``timeout`` seconds (aiohttp bounds the
    connect and the read, not the write): an upstream that never reads it fills the socket
    buffers, and the write would wait for ever. Sets :attr:`timed_out` when it gave up."""

    def __init__(self, value: bytes, timeout: float) -> None:
        super().__init__(value, content_type="application/json")
        self.raw = value
        self.write_timeout = timeout
        self.timed_out = False

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self._bounded(super().write(writer))

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        await self._bounded(super().write_with_length(writer, content_length))

    async def _bounded(self, write: Awaitable[None]) -> None:
        try:
            # A timeout scope, not wait_for: the write stays in aiohttp's writer task. An extra
            # task hop let the answer be read and its connection pooled before that task armed
            # the connection's read timeout, which then failed the connection's next request.
            async with _timeout(self.write_timeout):
                await write
        except asyncio.TimeoutError:
            self.timed_out = True
            raise


class _PoolWait:
    """Per request (aiohttp's ``trace_request_ctx``): whether it is waiting for a free pooled
    connection now, so a connect timeout can say that the pool was full."""

    __slots__ = ("queued",)

    def __init__(self) -> None:
        self.queued = False


async def _queued(session: object, context: SimpleNamespace, params: object) -> None:
    context.trace_request_ctx.queued = True


async def _dequeued(session: object, context: SimpleNamespace, params: object) -> None:
    context.trace_request_ctx.queued = False


_POOL_TRACE = aiohttp.TraceConfig()
_POOL_TRACE.on_connection_queued_start.append(_queued)
_POOL_TRACE.on_connection_queued_end.append(_dequeued)
_POOL_TRACE.freeze()


def error_message(body: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else its first 200 characters."""
    try:
        data = json.loads(body)
        message = data["error"]["message"]
        if isinstance(message, str):
            return message[:300]
    except (ValueError, KeyError, TypeError):
        pass
    return body[:200].decode("utf-8", "replace") or "(empty body)"


def error_code(body: bytes) -> str | None:
    """The ``error.code`` of an OpenAI-style error body (e.g. ``"rate_limit_exceeded"``), if a
    string."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code[:100] if isinstance(code, str) else None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

"""One side's upstream: a pooled async httpx client with timeouts and bounded retries."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

import httpx

from ..decision import Side
from .config import ServeConfig

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
    ``timed_out`` marks timeouts, and ``body`` keeps an error answer's bytes for callers to pass on.
    """

    def __init__(
        self,
        side: Side,
        message: str,
        *,
        status: int | None = None,
        timed_out: bool = False,
        body: bytes = b"",
    ) -> None:
        super().__init__(f"{side} upstream {message}")
        self.side = side
        self.status = status
        self.timed_out = timed_out
        self.body = body

    @property
    def caller_error(self) -> bool:
        """The upstream refused the request itself (see :data:`CALLER_ERROR_STATUSES`)."""
        return self.status in CALLER_ERROR_STATUSES


class Upstream:
    """``POST {base_url}/chat/completions`` on one side, through one connection pool.

    Connection failures, connect timeouts and :data:`RETRY_STATUSES` are retried up to
    ``max_retries`` times with jittered exponential backoff (or the answer's ``Retry-After``, at
    most 4 s). A read timeout is not retried: the side may still be working, so waiting again
    would double the latency; the caller falls back instead.
    """

    def __init__(self, side: Side, config: ServeConfig, *, backoff_s: float = 0.1) -> None:
        upstream = config.strong if side == "strong" else config.weak
        self.side: Side = side
        self.model = upstream.model
        self.max_retries = config.max_retries
        self.backoff_s = backoff_s
        headers = {"accept-encoding": "identity"}
        key = upstream.api_key(side)
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        self.client = httpx.AsyncClient(
            base_url=upstream.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
            ),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def open(self, payload: bytes) -> httpx.Response:
        """Send one request body; the answer comes back open (unread) with a 2xx status.

        The caller must ``aclose()`` it. Raises :class:`UpstreamError`.
        """
        attempt = 0
        while True:
            try:
                request = self.client.build_request(
                    "POST", "chat/completions", content=payload, headers=_JSON_HEADERS
                )
                response = await self.client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout) and attempt < self.max_retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt, None))
                    continue
                raise UpstreamError(
                    self.side, f"timed out ({type(exc).__name__})", timed_out=True
                ) from exc
            except httpx.TransportError as exc:
                if attempt < self.max_retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt, None))
                    continue
                raise UpstreamError(
                    self.side, f"unreachable ({type(exc).__name__}: {exc})"
                ) from exc
            if response.status_code < 400:
                return response
            body = await self.read(response)
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                attempt += 1
                await asyncio.sleep(self._backoff(attempt, response.headers.get("retry-after")))
                continue
            raise UpstreamError(
                self.side,
                f"answered {response.status_code}: {error_message(body)}",
                status=response.status_code,
                body=body,
            )

    async def read(self, response: httpx.Response) -> bytes:
        """The whole body of an open answer, then closes it. Raises :class:`UpstreamError`."""
        try:
            return await response.aread()
        except httpx.TimeoutException as exc:
            raise UpstreamError(
                self.side, f"timed out reading its answer ({type(exc).__name__})", timed_out=True
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                self.side, f"broke off its answer ({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            await response.aclose()

    async def chunks(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``stream`` (an answer's ``aiter_raw()``) with httpx errors as :class:`UpstreamError`."""
        try:
            async for chunk in stream:
                yield chunk
        except httpx.TimeoutException as exc:
            raise UpstreamError(
                self.side, f"timed out mid-answer ({type(exc).__name__})", timed_out=True
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                self.side, f"broke off its answer ({type(exc).__name__}: {exc})"
            ) from exc

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), _MAX_BACKOFF_S)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        return min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S) * random.uniform(0.5, 1.0)


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

"""A fast, scripted OpenAI-compatible upstream, run as its own process on loopback.

    python tests/serve/scripted_upstream.py --port PORT

``POST /v1/chat/completions`` answers ``"<model>: <last user text>"`` (streamed word by word as
server-sent events when asked), unless the script for the request's model says otherwise. Admin
endpoints drive it from tests:

- ``POST /_script`` with ``{"<model>": [step, ...]}`` replaces the scripts. Each request for that
  model takes the next step; the last step repeats. A step may hold ``status`` (answer with that
  error status; ``retry_after`` adds the header), ``delay`` (seconds before answering),
  ``chunk_delay`` (seconds between streamed chunks), ``drop_after`` (cut the connection after
  that many streamed chunks), ``reply`` (answer text), ``not_json`` (answer 200 with HTML), ``json_for_stream`` (answer a stream
  request with plain JSON), ``error_event`` (start a stream with an error event), ``no_done``
  (end a stream without ``data: [DONE]``), ``done_gap`` (seconds between ``data: [DONE]`` and
  the end of the body), ``stall_after`` (after that many streamed chunks, send nothing more
  until the client leaves). A stream request with ``stream_options.include_usage`` gets a usage
  chunk before ``[DONE]``: 10 prompt tokens, one completion token per word.
- ``POST /_reset`` clears scripts and the log; ``GET /_log`` returns ``{"requests": [...],
  "events": [...]}``: each request's body and authorization header, and for each request how
  it ended (``completed``, or ``disconnected`` when the client went away first).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

scripts: dict[str, list[dict[str, Any]]] = {}
requests: list[dict[str, Any]] = []
events: list[dict[str, Any]] = []
ids = itertools.count(1)


def next_step(model: str) -> dict[str, Any]:
    queue = scripts.get(model)
    if not queue:
        return {}
    return queue.pop(0) if len(queue) > 1 else queue[0]


def reply_text(body: dict[str, Any]) -> str:
    last = next(m for m in reversed(body["messages"]) if m["role"] == "user")["content"]
    if isinstance(last, list):
        last = " ".join(p.get("text", "") for p in last if isinstance(p, dict))
    return f"{body['model']}: {last}"


def completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(data)}\n\n".encode()


async def disconnected_within(request: Request, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as the client disconnects instead."""
    with anyio.move_on_after(seconds):
        while (await request.receive())["type"] != "http.disconnect":
            pass
        return True
    return False


async def chat(request: Request) -> Response:
    body = await request.json()
    rid = next(ids)
    requests.append(
        {"id": rid, "body": body, "authorization": request.headers.get("authorization")}
    )
    step = next_step(body["model"])
    if step.get("delay") and await disconnected_within(request, step["delay"]):
        events.append({"id": rid, "event": "disconnected"})
        return Response(status_code=499)
    if "status" in step:
        events.append({"id": rid, "event": "completed"})
        headers = {"retry-after": str(step["retry_after"])} if "retry_after" in step else None
        error = {
            "message": f"scripted {step['status']}",
            "type": "scripted",
            "param": None,
            "code": None,
        }
        return JSONResponse({"error": error}, status_code=step["status"], headers=headers)
    if step.get("not_json"):
        events.append({"id": rid, "event": "completed"})
        return Response(b"<html>not json</html>", media_type="text/html")
    text = step.get("reply") or reply_text(body)
    if not body.get("stream") or step.get("json_for_stream"):
        events.append({"id": rid, "event": "completed"})
        return JSONResponse(completion(body["model"], text))
    usage = (body.get("stream_options") or {}).get("include_usage") is True
    return StreamingResponse(
        stream(rid, body["model"], text, step, usage), media_type="text/event-stream"
    )


async def stream(
    rid: int, model: str, text: str, step: dict[str, Any], usage: bool
) -> AsyncIterator[bytes]:
    try:
        yield b": keep-alive comment before the first chunk\n\n"
        if step.get("error_event"):
            yield b'data: {"error": {"message": "scripted error event", "type": "scripted"}}\n\n'
            events.append({"id": rid, "event": "completed"})
            return
        words = text.split(" ")
        for i, word in enumerate(words):
            if i == step.get("drop_after"):
                events.append({"id": rid, "event": "dropped"})
                raise RuntimeError("scripted connection drop")
            if i == step.get("stall_after"):
                await asyncio.sleep(3600)  # until the client leaves (cancelled then)
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
            yield chunk(model, delta)
            if step.get("chunk_delay"):
                await asyncio.sleep(step["chunk_delay"])
        yield chunk(model, {}, "stop")
        if usage:
            counts = {"prompt_tokens": 10, "completion_tokens": len(words)}
            counts["total_tokens"] = 10 + len(words)
            data = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": model,
                    "choices": [], "usage": counts}  # fmt: skip
            yield f"data: {json.dumps(data)}\n\n".encode()
        if not step.get("no_done"):
            yield b"data: [DONE]\n\n"
        if step.get("done_gap"):
            await asyncio.sleep(step["done_gap"])
        events.append({"id": rid, "event": "completed"})
    except asyncio.CancelledError:
        events.append({"id": rid, "event": "disconnected"})
        raise


async def set_script(request: Request) -> Response:
    scripts.clear()
    scripts.update(await request.json())
    return JSONResponse({"ok": True})


async def reset(request: Request) -> Response:
    scripts.clear()
    requests.clear()
    events.clear()
    return JSONResponse({"ok": True})


async def log(request: Request) -> Response:
    return JSONResponse({"requests": requests, "events": events})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/_script", set_script, methods=["POST"]),
        Route("/_reset", reset, methods=["POST"]),
        Route("/_log", log, methods=["GET"]),
        Route("/health", lambda request: JSONResponse({"ok": True}), methods=["GET"]),
    ]
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)

"""A tiny local stand-in for the OpenAI chat-completions endpoint (no network, no key).

Scripted like the test LLMs: with tools offered and no tool result yet, it calls the first tool
with ``tool_arguments``; otherwise it answers ``"<model>: <last message text>"``. Streams as
server-sent events when asked. Every request body is kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, tool_arguments: dict[str, Any] | None = None) -> None:
        self.tool_arguments = tool_arguments or {}
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                message = fake._reply(body)
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for chunk in fake._chunks(body["model"], message):
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                payload = json.dumps(fake._completion(body["model"], message)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _reply(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        tools = body.get("tools") or []
        if tools and not any(m["role"] == "tool" for m in messages):
            return {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": tools[0]["function"]["name"],
                            "arguments": json.dumps(self.tool_arguments),
                        },
                    }
                ],
            }
        last = messages[-1]["content"]
        if isinstance(last, list):
            last = " ".join(p.get("text", "") for p in last)
        return {"role": "assistant", "content": f"{body['model']}: {last}"}

    @staticmethod
    def _completion(model: str, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    @staticmethod
    def _chunks(model: str, message: dict[str, Any]) -> list[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            return [
                chunk({"role": "assistant", "content": None, "tool_calls": [{**call, "index": 0}]}),
                chunk({}, "tool_calls"),
            ]
        words = message["content"].split(" ")
        deltas = [w if i == 0 else " " + w for i, w in enumerate(words)]
        return (
            [chunk({"role": "assistant", "content": deltas[0]})]
            + [chunk({"content": d}) for d in deltas[1:]]
            + [chunk({}, "stop")]
        )

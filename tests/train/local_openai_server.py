"""A real, local OpenAI-compatible chat-completions server for tests (loopback only).

``POST /v1/chat/completions`` answers with a reply function; by default the real
SmolLM2-135M-Instruct (greedy, through ``routellm_base.local_models``) generates from the received
messages. It binds 127.0.0.1 on an ephemeral port, serves at most ``max_requests`` requests
(later ones get 400, which clients do not retry), refuses bodies over ``max_body`` bytes, can
fail the first ``fail_first`` requests with 503 (a transient error) and shuts down on exit.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (messages, max_tokens) -> (text, prompt tokens, completion tokens)
Reply = Callable[[list[dict[str, str]], int], tuple[str, int, int]]


def smollm2_reply(max_new_tokens: int = 48, max_input_tokens: int = 1024) -> Reply:
    """Greedy SmolLM2-135M-Instruct replies, at most ``max_new_tokens`` long (loads the model)."""
    from routellm_base import local_models as local

    model = local.load_smollm2()

    def reply(messages: list[dict[str, str]], max_tokens: int) -> tuple[str, int, int]:
        prompt = local.chat_prompt(model.tokenizer, messages)
        inputs = local.encode_prompt(model.tokenizer, prompt, max_tokens=max_input_tokens)
        settings = local.GenerationSettings(max_new_tokens=min(max_tokens, max_new_tokens), temperature=0.0)
        out = local.generate(model, inputs, settings)
        return out.text, out.input_tokens, out.output_tokens

    return reply


class LocalOpenAIServer:
    """Context manager: ``with LocalOpenAIServer(reply) as server: ... server.url``."""

    def __init__(
        self, reply: Reply, *, max_requests: int = 64, max_body: int = 1 << 20, fail_first: int = 0
    ) -> None:
        self.reply = reply
        self.max_requests = max_requests
        self.max_body = max_body
        self.fail_first = fail_first
        self.received: list[dict[str, Any]] = []  # every request body, in arrival order
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with server._lock:
                    server.statuses.append(status)

            def _error(self, status: int, message: str) -> None:
                self._send(status, {"error": {"message": message, "type": "test_server", "code": status}})

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._error(404, f"no route {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length > server.max_body:
                    return self._error(413, "request body too large")
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    server.received.append(body)
                    count = len(server.received)
                if count > server.max_requests:
                    return self._error(400, f"test server limit of {server.max_requests} requests reached")
                if count <= server.fail_first:
                    return self._error(503, "temporarily unavailable (scripted)")
                messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
                text, n_in, n_out = server.reply(messages, int(body.get("max_tokens") or 256))
                self._send(200, {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "local"),
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }],
                    "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
                })

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> LocalOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

"""Load on `routellm serve` against calling the upstream directly, on loopback.

    python benchmarks/server_load.py [--duration 3] [--concurrency 64 256] [--workers 1 2]

Starts, as separate processes on 127.0.0.1: an OpenAI-compatible upstream that answers every
request after a fixed latency (20 ms; a stream sends its first chunk after that latency and the
rest at once), and `routellm serve` with both sides on that upstream (default router `task_experts`,
`--strong-share 0.5`, `--log-level warning`). Then, for each worker count, concurrency and
mode (non-streaming, streaming), N closed-loop clients (each sends its next request as soon as
the last one is answered) call the upstream directly for `--duration` seconds, then the router
for as long, twice over, alternating so machine noise hits both alike.

Reported per row: requests/s and p50/p99 latency (send to the last byte of the answer) of each
path, the router's added p50/p99 in ms and as ratios, the CPU time the router's processes spent
per routed request, and the checks over every request sent: errors (non-200 or exceptions), lost
(no answer within 10 s) and mixed-up answers (an answer whose text is not the echo of its own
request's unique prompt, or, routed, whose `routellm` decision is missing or names another model
than the one that answered). Also the wall time each routing decision held the server's event
loop (`routellm.seconds` of the routed answers; on a busy machine it includes preemption). Every phase stops at
`--duration` seconds or `--max-requests` requests, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

PROMPTS = [
    "Explain the difference between a process and a thread.",
    "Write a haiku about autumn rain.",
    "Prove that the square root of 2 is irrational.",
    "What is the capital of Australia?",
    "Summarise the causes of the First World War in three sentences.",
    "Give me a Python function that reverses a linked list.",
    "How do vaccines train the immune system?",
    "Translate 'good morning, how are you?' into French.",
]
REQUEST_TIMEOUT_S = 10.0


# -- the upstream: fixed latency, echoes the prompt --------------------------------------------


def upstream_app(latency_s: float) -> Callable[..., Awaitable[None]]:
    """A minimal ASGI OpenAI-compatible chat-completions endpoint with a fixed latency."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        text = "echo " + request["messages"][-1]["content"]
        model = request["model"]
        await asyncio.sleep(latency_s)
        if not request.get("stream"):
            payload = json.dumps({
                "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
            }).encode()  # fmt: skip
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": payload})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        words = text.split(" ")
        for i, word in enumerate(words):
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
            chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip
            await send({"type": "http.response.body", "body": b"data: " + json.dumps(chunk).encode() + b"\n\n",
                        "more_body": True})  # fmt: skip
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    return app


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args[:4]} exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{args[:4]} not ready in 60 s")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its child processes (Linux /proc)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                total += tree_cpu_s(int(child))
    except (OSError, IndexError, ValueError):
        pass  # a process that just ended, or no /proc
    return total


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the load ----------------------------------------------------------------------------------


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    decision_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    """CPU seconds the process under test (router, or upstream for direct calls) used."""
    errors: int = 0
    lost: int = 0
    mixed_up: int = 0
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        """Requests sent in the phase: answered correctly, failed, lost or mixed up."""
        return len(self.latencies) + self.errors + self.lost + self.mixed_up

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(int(q * len(data)), len(data) - 1)] * 1000


async def one_request(
    session: aiohttp.ClientSession,
    url: str,
    model: str,
    stream: bool,
    n: int,
    phase: Phase,
    routed: bool,
) -> None:
    prompt = f"request {n}: {PROMPTS[n % len(PROMPTS)]}"
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    start = time.perf_counter()
    try:
        async with session.post(url, json=body) as response:
            if response.status != 200:
                phase.errors += 1
                return
            if stream:
                events = [
                    line[6:].strip()
                    async for line in response.content
                    if line.startswith(b"data: ")
                ]
            else:
                data = await response.json()
    except aiohttp.ClientError:
        phase.errors += 1
        return
    elapsed = time.perf_counter() - start
    if stream:
        if not events or events[-1] != b"[DONE]":
            phase.errors += 1
            return
        chunks = [json.loads(e) for e in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        answered_by = chunks[0]["model"]
        decision = chunks[0].get("routellm")
    else:
        text = data["choices"][0]["message"]["content"]
        answered_by = data["model"]
        decision = data.get("routellm")
    if text != f"echo {prompt}" or (
        routed and (decision is None or decision["model"] != answered_by)
    ):
        phase.mixed_up += 1
        return
    phase.latencies.append(elapsed)
    if routed:
        phase.decision_s.append(decision["seconds"])


async def run_phase(
    url: str,
    model: str,
    stream: bool,
    concurrency: int,
    duration: float,
    max_requests: int,
    routed: bool,
    measured_pid: int,
) -> Phase:
    phase = Phase()
    counter = iter(range(max_requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Open the connections outside the clock.
        await asyncio.gather(
            *(
                one_request(session, url, model, stream, -1 - i, Phase(), routed)
                for i in range(concurrency)
            )
        )
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            for n in counter:
                if time.perf_counter() >= deadline:
                    return
                try:
                    await asyncio.wait_for(
                        one_request(session, url, model, stream, n, phase, routed),
                        REQUEST_TIMEOUT_S,
                    )
                except asyncio.TimeoutError:
                    phase.lost += 1

        start, cpu = time.perf_counter(), tree_cpu_s(measured_pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        phase.seconds = time.perf_counter() - start
        phase.cpu_s = tree_cpu_s(measured_pid) - cpu
    return phase


def merge(phases: list[Phase]) -> Phase:
    out = Phase()
    for p in phases:
        out.latencies += p.latencies
        out.decision_s += p.decision_s
        out.errors += p.errors
        out.lost += p.lost
        out.mixed_up += p.mixed_up
        out.seconds += p.seconds
        out.cpu_s += p.cpu_s
    return out


HEADER = (
    "| workers | clients | mode | direct req/s | routed req/s | throughput ratio | direct p50 / p99 ms "
    "| routed p50 / p99 ms | added p50 / p99 ms | p50 ratio | p99 ratio | router CPU ms/req "
    "| requests | errors | lost | mixed-up | decision on loop p50 / p99 / max ms |"
)


def measure_row(
    args: argparse.Namespace,
    workers: int,
    concurrency: int,
    stream: bool,
    upstream: tuple[str, int],
    router: tuple[str, int],
) -> str:
    """Alternate direct and routed phases; one table row of their figures side by side."""
    direct, routed = [], []
    for _ in range(args.rounds):
        for url, model, is_routed, pid, out in (
            (upstream[0], "strong-m", False, upstream[1], direct),
            (router[0], "router-task_experts", True, router[1], routed),
        ):
            out.append(
                asyncio.run(
                    run_phase(
                        url,
                        model,
                        stream,
                        concurrency,
                        args.duration,
                        args.max_requests,
                        is_routed,
                        pid,
                    )
                )
            )
    d, r = merge(direct), merge(routed)
    dec = sorted(r.decision_s) or [float("nan")]
    return (
        f"| {workers} | {concurrency} | {'stream' if stream else 'non-stream'} | {d.rate:,.0f} | {r.rate:,.0f} "
        f"| {r.rate / d.rate:.2f} | {d.pct(0.5):.1f} / {d.pct(0.99):.1f} | {r.pct(0.5):.1f} / {r.pct(0.99):.1f} "
        f"| {r.pct(0.5) - d.pct(0.5):.1f} / {r.pct(0.99) - d.pct(0.99):.1f} | {r.pct(0.5) / d.pct(0.5):.2f} "
        f"| {r.pct(0.99) / d.pct(0.99):.2f} | {r.cpu_s / max(len(r.latencies), 1) * 1000:.2f} "
        f"| {sum(p.requests for p in (d, r)):,} | {d.errors + r.errors} | {d.lost + r.lost} | {d.mixed_up + r.mixed_up} "
        f"| {statistics.median(dec) * 1000:.2f} / {dec[int(0.99 * (len(dec) - 1))] * 1000:.2f} / {dec[-1] * 1000:.2f} |"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per phase (default 3)")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=30_000,
        help="requests per phase at most (default 30000)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[64, 256],
        help="requests in flight, one row each (default 64 256)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="server worker processes, one table each (default 1 2)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=20.0,
        help="the fake upstream's latency per request, in milliseconds (default 20)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="direct/routed alternations per row (default 2)"
    )
    parser.add_argument(
        "--upstream", action="store_true", help=argparse.SUPPRESS
    )  # child process mode
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = build_parser().parse_args()

    if args.upstream:
        import uvicorn

        app = upstream_app(args.latency_ms / 1000)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
        return

    up_port = free_port()
    upstream = start(
        [
            sys.executable,
            __file__,
            "--upstream",
            "--port",
            str(up_port),
            "--latency-ms",
            str(args.latency_ms),
        ],
        up_port,
    )
    up_url = f"http://127.0.0.1:{up_port}/v1"
    print(
        f"# {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, upstream latency {args.latency_ms:g} ms, "
        f"{args.duration:g} s per phase x {args.rounds} rounds; load average before: {os.getloadavg()[0]:.2f}"
    )
    print(HEADER)
    rows = []
    try:
        for workers in args.workers:
            port = free_port()
            command = [
                sys.executable, "-m", "routellm_base", "serve", "--port", str(port), "--workers", str(workers),
                "--strong-base-url", up_url, "--strong-model", "strong-m",
                "--weak-base-url", up_url, "--weak-model", "weak-m",
                "--strong-share", "0.5", "--log-level", "warning", "--max-connections", "1024",
            ]  # fmt: skip
            server = start(command, port)
            try:
                for concurrency in args.concurrency:
                    for stream in (False, True):
                        row = measure_row(
                            args, workers, concurrency, stream,
                            (f"{up_url}/chat/completions", upstream.pid),
                            (f"http://127.0.0.1:{port}/v1/chat/completions", server.pid),
                        )  # fmt: skip
                        rows.append(row)
                        print(row, flush=True)
            finally:
                stop(server)
    finally:
        stop(upstream)
    print()
    print(HEADER)
    print("|" + " --- |" * HEADER.count(" | ") + " --- |")
    for row in rows:
        print(row)
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

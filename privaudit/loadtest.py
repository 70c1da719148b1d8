"""A load-test OpenAI-compatible server: configurable latency, a concurrency cap answering 429, faults.

Why: whether an audit of 100k data subjects finishes depends on how the client behaves against a
served model (vLLM batches hundreds of concurrent requests, then pushes back), and that cannot be
measured against the real model on a laptop. This server stands in for the cluster: each request
is answered after `latency` seconds with a synthetic completion (a deterministic function of the
prompt, so reruns give identical records); beyond `cap` requests in flight it answers 429 with
`Retry-After: retry_after` (as vLLM behind a gateway, or OpenAI's rate limiter, does); a share
`error_rate` of requests gets a 5xx and a share `drop_rate` has its connection closed unanswered.

It is a plain asyncio HTTP/1.1 server (keep-alive, Content-Length bodies): cheap enough per request
that the client, not the server, is what a benchmark measures. Use it in-process
(`with LoadServer(LoadConfig(...)) as srv: srv.base_url`) or as a process
(`python -m privaudit.loadtest --port 8001 --latency 0.2 --cap 256`), which is what
benchmarks/bench_scale.py does so the server's CPU and memory are not counted as the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MODEL = "loadtest"


@dataclass(frozen=True)
class LoadConfig:
    """What the server does: latency per request, the cap on requests in flight, injected faults."""

    latency: float = 0.0  # seconds before answering
    cap: int = 0  # most requests in flight at once; beyond it 429 (0 = no cap)
    retry_after: str | None = "0"  # Retry-After of a 429 (None = no header)
    error_rate: float = 0.0  # share of requests answered 500 / 502 (alternating; 503 would mean "overloaded")
    drop_rate: float = 0.0  # share of requests whose connection is closed without an answer
    seed: int = 0  # fault draws are seeded: the same run meets the same faults
    words: int = 8  # words per synthetic completion
    model: str = MODEL


@dataclass
class LoadStats:
    """What the server saw (tests check it; the benchmark prints it)."""

    requests: int = 0
    answered: int = 0  # 200s
    prompts: int = 0  # prompts answered (a request may carry a list)
    throttled: int = 0  # 429s
    errors: int = 0  # injected 5xx
    dropped: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    statuses: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "answered": self.answered, "prompts": self.prompts,
                "throttled": self.throttled, "errors": self.errors, "dropped": self.dropped,
                "max_in_flight": self.max_in_flight}


def synthetic_completion(prompt: str, words: int) -> str:
    """A deterministic stand-in for a model's answer: words drawn from the prompt's hash."""
    digest = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()
    return " " + " ".join(f"w{digest[2 * i:2 * i + 4]}" for i in range(words))


class _Handler:
    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.stats = LoadStats()
        self._rng = random.Random(config.seed)

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                if not await self.answer(method, path.split("?", 1)[0], body, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def answer(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection was dropped on purpose."""
        s = self.stats
        if method == "GET" and path == "/v1/models":
            self._send(writer, 200, {"object": "list", "data": [{"id": self.config.model, "object": "model",
                                                                 "owned_by": "privaudit-loadtest"}]})
            return True
        if method == "GET" and path == "/stats":
            self._send(writer, 200, s.to_dict())
            return True
        s.requests += 1
        if self.config.cap and s.in_flight >= self.config.cap:
            s.throttled += 1
            headers = {"Retry-After": self.config.retry_after} if self.config.retry_after is not None else {}
            self._send(writer, 429, {"error": {"message": "server at capacity"}}, headers)
            return True
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            draw = self._rng.random()
            if self.config.latency:
                await asyncio.sleep(self.config.latency)
            if draw < self.config.drop_rate:
                s.dropped += 1
                writer.transport.abort()
                return False
            if draw < self.config.drop_rate + self.config.error_rate:
                s.errors += 1
                code = 500 if s.errors % 2 else 502
                self._send(writer, code, {"error": {"message": f"injected HTTP {code}"}})
                return True
            try:
                request = json.loads(body or b"{}")
                payload, prompts = self._completion(path, request)
            except (ValueError, TypeError, KeyError) as exc:
                self._send(writer, 400, {"error": {"message": f"bad request: {exc}"}})
                return True
            s.answered += 1
            s.prompts += prompts
            self._send(writer, 200, payload)
            return True
        finally:
            s.in_flight -= 1

    def _completion(self, path: str, request: dict[str, Any]) -> tuple[dict[str, Any], int]:
        n = int(request.get("n") or 1)
        words = self.config.words
        if path == "/v1/completions":
            prompt = request["prompt"]
            prompts = [prompt] if isinstance(prompt, str) else [str(p) for p in prompt]
            choices = [{"index": i * n + j, "text": synthetic_completion(f"{p}\x1f{j}", words), "finish_reason": "length"}
                       for i, p in enumerate(prompts) for j in range(n)]
            return {"object": "text_completion", "model": self.config.model, "choices": choices}, len(prompts)
        if path == "/v1/chat/completions":
            text = json.dumps(request["messages"], sort_keys=True)
            choices = [{"index": j, "message": {"role": "assistant", "content": synthetic_completion(f"{text}\x1f{j}", words)},
                        "finish_reason": "length"} for j in range(n)]
            return {"object": "chat.completion", "model": self.config.model, "choices": choices}, 1
        raise KeyError(f"no route {path}")

    def _send(self, writer: asyncio.StreamWriter, code: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.stats.statuses[code] += 1
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     f"{extra}\r\n".encode("latin-1") + body)


class LoadServer:
    """The server on 127.0.0.1 in a background thread: `with LoadServer(cfg) as srv: srv.spec(...)`."""

    def __init__(self, config: LoadConfig = LoadConfig(), port: int = 0) -> None:
        self.config = config
        self.handler = _Handler(config)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._port = port
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True, name="privaudit-loadtest")
        self._thread.start()
        self._ready.wait(10)
        if self._server is None:
            raise RuntimeError("load-test server did not start")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self.handler.connection, "127.0.0.1", self._port, backlog=4096))
        finally:
            self._ready.set()
        self._loop.run_forever()

    @property
    def stats(self) -> LoadStats:
        return self.handler.stats

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def spec(self, options: str = "") -> str:
        return f"openai:{self.base_url}#{self.config.model}" + (f";{options}" if options else "")

    def close(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> "LoadServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    """`python -m privaudit.loadtest`: serve until killed; prints the port on its first line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--cap", type=int, default=0)
    ap.add_argument("--retry-after", default="0")
    ap.add_argument("--error-rate", type=float, default=0.0)
    ap.add_argument("--drop-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        import uvloop  # optional: a faster event loop, when installed

        uvloop.install()
    except ImportError:
        pass
    config = LoadConfig(latency=args.latency, cap=args.cap, retry_after=args.retry_after or None,
                        error_rate=args.error_rate, drop_rate=args.drop_rate, seed=args.seed)
    handler = _Handler(config)

    async def serve() -> None:
        server = await asyncio.start_server(handler.connection, "127.0.0.1", args.port, backlog=4096)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        print(json.dumps(handler.stats.to_dict()), flush=True)


if __name__ == "__main__":
    main()

"""A real OpenAI-compatible HTTP server whose model replies follow a script.

Only for tests and benchmarks: no real math model runs on these machines, and
the loop's behaviour (repair on Lean's errors, budgets, overlap) must be
tested end to end over real sockets. Rules match the last user message by
regular expression; the first matching rule's replies are handed out in turn.

    server = ScriptedServer([Rule(r"Complete the following", ["```lean4\\n...```"])], latency_s=0.2)
    base_url = server.start()        # http://127.0.0.1:PORT/v1
    ...
    server.stop()

Run as a program (`python tests/scripted_server.py SCRIPT.json`) it serves a
script from a JSON file and prints its base URL.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Rule:
    pattern: str
    replies: list[str]
    # each reply's log-probability per token (default -0.1), so that rankings by it can be tested
    logprobs: list[float] = field(default_factory=list)
    _cycle: Any = field(default=None, repr=False)

    def next_reply(self) -> tuple[str, float]:
        if self._cycle is None:
            self._cycle = itertools.cycle(range(len(self.replies)))
        i = next(self._cycle)
        return self.replies[i], self.logprobs[i] if i < len(self.logprobs) else -0.1


class ScriptedServer:
    def __init__(
        self,
        rules: list[Rule],
        *,
        latency_s: float = 0.0,
        model: str = "scripted",
        default: str = "I do not know.",
        slots: int | None = None,
    ) -> None:
        self.rules = rules
        self.latency_s = latency_s
        # like a GPU serving a fixed batch: at most `slots` requests are worked on at once
        self._slots = threading.Semaphore(slots) if slots else None
        self.model = model
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def reply_for(self, prompt: str) -> tuple[str, float]:
        with self._lock:
            for rule in self.rules:
                if re.search(rule.pattern, prompt, re.S):
                    return rule.next_reply()
        return self.default, -0.1

    def start(self, port: int = 0) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout, Ctrl-C): nothing to answer

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200, {"object": "list", "data": [{"id": server.model, "object": "model", "owned_by": "tests"}]}
                    )
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                if request.get("model") != server.model:
                    self._send(404, {"error": {"message": f"The model `{request.get('model')}` does not exist."}})
                    return
                with server._lock:
                    server.requests.append(request)
                prompt = request["messages"][-1]["content"]
                if server._slots is not None:
                    with server._slots:
                        time.sleep(server.latency_s)
                else:
                    time.sleep(server.latency_s)
                choices = []
                total = 0
                for i in range(int(request.get("n") or 1)):
                    text, logprob = server.reply_for(prompt)
                    tokens = max(1, len(text.split()))
                    limit = int(request.get("max_tokens") or tokens)
                    finish = "stop"
                    if tokens > limit:
                        text, tokens, finish = " ".join(text.split()[:limit]), limit, "length"
                    total += tokens
                    content = [
                        {"token": w, "logprob": logprob, "bytes": None, "top_logprobs": []}
                        for w in text.split()[:tokens]
                    ]
                    choices.append(
                        {
                            "index": i,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": finish,
                            "logprobs": {"content": content} if request.get("logprobs") else None,
                        }
                    )
                prompt_tokens = len(prompt.split())
                self._send(
                    200,
                    {
                        "id": "scripted",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": server.model,
                        "choices": choices,
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": total,
                            "total_tokens": prompt_tokens + total,
                        },
                    },
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def spawn(rules: list[Rule], folder: str, *, latency_s: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    """The server in its own process (which a test can kill -9); returns it and its URL."""
    path = f"{folder}/script.json"
    with open(path, "w") as f:
        json.dump({"latency_s": latency_s, "rules": [{"pattern": r.pattern, "replies": r.replies} for r in rules]}, f)
    proc = subprocess.Popen([sys.executable, __file__, path], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    script = json.loads(open(sys.argv[1]).read())
    server = ScriptedServer(
        [Rule(r["pattern"], r["replies"]) for r in script["rules"]],
        latency_s=float(script.get("latency_s", 0)),
        model=script.get("model", "scripted"),
        default=script.get("default", "I do not know."),
    )
    print(server.start(int(script.get("port", 0))), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

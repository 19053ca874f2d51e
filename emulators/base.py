"""What every emulator shares: a threaded HTTP server on loopback, started in-process or from the CLI."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class EmulatorHandler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; with Nagle on, each keep-alive response waits for the
    # client's delayed ACK (40 ms on Linux), capping a connection near 25 requests/s.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and benchmarks read the state, not the log

    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path

    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body().decode()).items()}

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def send_bytes(self, content: bytes, mime: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's listen backlog is 5: past a few dozen concurrent connects the kernel resets them,
    # and the emulator would be the bottleneck instead of standing in for a provider with capacity.
    request_queue_size = 1024

    def __init__(self, handler: type[EmulatorHandler], port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), handler)
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (a killed sender) is part of the scenario, not an error."""
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class CallbackQueue:
    """Delivers delayed webhook calls from one background thread (not a timer thread per call)."""

    def __init__(self) -> None:
        import heapq
        import itertools

        import httpx

        self._heap: list[tuple[float, int, str, bytes, dict[str, str]]] = []
        self._push = heapq.heappush
        self._pop = heapq.heappop
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._http = httpx.Client(timeout=10)
        self.delivered = 0
        self.failures: list[str] = []
        self._stop = False
        threading.Thread(target=self._run, name="callbacks", daemon=True).start()

    def schedule(self, delay_s: float, url: str, body: bytes, headers: dict[str, str]) -> None:
        import time

        with self._cv:
            self._push(self._heap, (time.monotonic() + delay_s, next(self._seq), url, body, headers))
            self._cv.notify()

    def pending(self) -> int:
        with self._cv:
            return len(self._heap)

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()

    def _run(self) -> None:
        import time

        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._stop:
                    return
                _due, _seq, url, body, headers = self._pop(self._heap)
            try:
                response = self._http.post(url, content=body, headers=headers)
                if response.status_code >= 300:
                    self.failures.append(f"{response.status_code} {url}")
                self.delivered += 1
            except Exception as exc:  # the app may be down: record and go on, like the real service retrying later
                self.failures.append(f"{type(exc).__name__} {url}")

"""A local HTTP server that misbehaves on purpose (127.0.0.1, random port).

Paths (the file name after the behaviour is what a mirror URL asks for)::

    /ok/<name>             the body, with a correct Content-Length
    /trickle/<name>        headers at once, then the body one byte every ``trickle_s``
    /trickle-headers/<n>   the status line and headers one byte every ``trickle_s``
    /stall/<name>          headers, then nothing (the connection stays open)
    /lie-long/<name>       Content-Length 1000x the body's, then the body followed by junk forever
    /no-length/<name>      no Content-Length, the body followed by junk forever
    /drop/<name>           Content-Length of the body, half the body, then the connection closes
    /status-500/<name>     an HTTP 500

Bodies are registered with :meth:`FaultServer.add`. Used by ``tests/faults`` and
``benchmarks/robustness.py``.
"""

from __future__ import annotations

import http.server
import threading
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = self.path.strip("/").split("/", 1)
        mode, name = (parts + [""])[:2]
        body = self.server.bodies.get(name)
        if body is None or mode == "status-500":
            self.send_error(404 if body is None else 500)
            return
        delay = self.server.trickle_s
        try:
            if mode == "trickle-headers":
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                for byte in head:
                    if self.server.stopping.is_set():
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(delay)
                self.wfile.write(body)
                return
            self.send_response(200)
            if mode == "lie-long":
                self.send_header("Content-Length", str(1000 * len(body)))
            elif mode != "no-length":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "ok":
                self.wfile.write(body)
            elif mode == "trickle":
                for byte in body:
                    if self.server.stopping.is_set():
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(delay)
            elif mode == "stall":
                self.wfile.flush()
                self.server.stopping.wait(120)
            elif mode in ("lie-long", "no-length"):
                self.wfile.write(body)
                junk = b"\0" * 65536
                while not self.server.stopping.is_set():
                    self.wfile.write(junk)
            elif mode == "drop":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    bodies: dict[str, bytes]
    trickle_s: float
    stopping: threading.Event


class FaultServer:
    """``with FaultServer() as server: url = server.url("trickle", "x.bin")``."""

    def __init__(self, trickle_s: float = 0.05) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.bodies = {}
        self._server.trickle_s = trickle_s
        self._server.stopping = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def add(self, name: str, body: bytes) -> None:
        self._server.bodies[name] = body

    def url(self, mode: str, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{mode}/{name}"

    def base(self, mode: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{mode}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()

"""A recording HTTP reverse proxy on loopback, for tests that check what a client asked a storage
server for (which bytes, in how many requests).

Every request is forwarded to the server unchanged, and one :class:`Exchange` is recorded per
request: its method, path, query, ``Range`` header, the server's status and how many bytes the
response's body had. Bodies stream through in blocks, both ways, so a gigabyte passes without being
held in memory.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

BLOCK = 1 << 20
# Headers about one hop, not the request: the proxy's own connections carry their own.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    # The proxy answered "100 Continue" itself before reading the body it forwards.
    "expect",
}  # fmt: skip


@dataclass(frozen=True)
class Exchange:
    """One request the proxy forwarded, and the size of the response's body."""

    method: str
    path: str
    query: str
    range: str | None
    status: int
    body_bytes: int


@dataclass
class RecordingProxy:
    """A running proxy: ``url`` is where clients point instead of ``upstream``."""

    upstream: str
    url: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, exchange: Exchange) -> None:
        with self.lock:
            self.exchanges.append(exchange)

    def requests_for(self, path: str) -> list[Exchange]:
        """The exchanges whose path is ``path`` (e.g. ``/bucket/key`` for an S3 object), in order."""
        with self.lock:
            return [e for e in self.exchanges if e.path == path]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1, so that clients keep their connections (and the proxy its one to the server).
    protocol_version = "HTTP/1.1"
    proxy: RecordingProxy
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:  # the exchanges are the log
        pass

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def _forward(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(501, "the recording proxy forwards request bodies with a Content-Length only")
            return
        if self._upstream is None:
            target = urlsplit(self.proxy.upstream)
            self._upstream = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=300)
        upstream = self._upstream
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in HOP_BY_HOP:
                upstream.putheader(name, value)
        upstream.endheaders()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            block = self.rfile.read(min(BLOCK, remaining))
            if not block:
                raise ConnectionError("the client closed its connection in the middle of a request body")
            upstream.send(block)
            remaining -= len(block)
        response = upstream.getresponse()
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        has_body = self.command != "HEAD" and response.status not in (204, 304)
        if has_body and response.getheader("Content-Length") is None:
            # A body of unknown length ends when the connection does.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        sent = 0
        while block := response.read(BLOCK):
            self.wfile.write(block)
            sent += len(block)
        url = urlsplit(self.path)
        self.proxy.record(Exchange(self.command, url.path, url.query, self.headers.get("Range"), response.status, sent))

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


@contextmanager
def recording_proxy(upstream: str) -> Iterator[RecordingProxy]:
    """A proxy to ``upstream`` (``http://host:port``) on a free loopback port, for the ``with`` block."""
    proxy = RecordingProxy(upstream)
    handler = type("Handler", (_Handler,), {"proxy": proxy})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="recording-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

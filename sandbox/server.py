"""The sandbox process: one threaded HTTP listener per simulated base URL plus a control API.

    python -m sandbox                      # all brokers on 127.0.0.1:8700..8705
    SandboxServer(port=0).start()          # in-process on free ports (the pytest fixture)
"""
from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .base import BrokerSim, SimClock
from .brokers import SIMULATORS
from .control import ControlApi
from .endpoints import DEFAULT_HOST, DEFAULT_PORT, ENDPOINTS, free_port_block, port_free  # noqa: F401
from .faults import FaultBoard
from .http import Request, Response, SimError

log = logging.getLogger("sandbox")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def _handler_for(dispatch):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"      # keep-alive: the sandbox must never be the bottleneck
        # Headers and body are two writes; with Nagle on, each answer waits ~40 ms for the
        # client's delayed ACK. Measured: 45 ms -> 2 ms per 100-activity page.
        disable_nagle_algorithm = True

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            path, _, query = self.path.partition("?")
            request = Request(method=self.command, path=path, raw_query=query,
                              headers={k.lower(): v for k, v in self.headers.items()},
                              body=self.rfile.read(length) if length else b"",
                              client_ip=self.client_address[0], host=self.headers.get("Host", ""))
            response = dispatch(request)
            if response is None:              # injected timeout: drop without answering
                self.close_connection = True
                return
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        def log_message(self, fmt, *args):  # quiet: tests and benchmarks read their own figures
            pass

    return Handler


class SandboxServer:
    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
        """port=0 puts every listener on a free port (tests)."""
        self.host = host
        self.base_port = port
        self.clock = SimClock()
        self.faults = FaultBoard()
        self.sims: dict[str, BrokerSim] = {name: cls(self.clock) for name, cls in SIMULATORS.items()}
        self.control = ControlApi(self)
        self.stats: dict[str, dict[str, int]] = {}
        self.stats_lock = threading.Lock()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self.urls: dict[str, str] = {}

    # -- dispatch -----------------------------------------------------------------------
    def _endpoint_dispatch(self, endpoint: str, sim: BrokerSim, environment: str):
        def dispatch(request: Request) -> Response | None:
            response = self.faults.apply(endpoint, request, lambda: self._answer(sim, environment, request),
                                         sim.rate_limited_response, sim.server_error_response)
            self._count(endpoint, response)
            return response
        return dispatch

    @staticmethod
    def _answer(sim: BrokerSim, environment: str, request: Request) -> Response:
        try:
            return sim.handle(environment, request)
        except SimError as exc:
            return exc.response
        except Exception:                     # a simulator bug must look like a broker 500, not hang
            log.exception("sandbox.handler_error path=%s", request.path)
            return sim.server_error_response(500)

    def _count(self, endpoint: str, response: Response | None) -> None:
        with self.stats_lock:
            s = self.stats.setdefault(endpoint, {"requests": 0, "429": 0, "418": 0, "5xx": 0, "dropped": 0})
            s["requests"] += 1
            if response is None:
                s["dropped"] += 1
            elif response.status in (429, 418):
                s[str(response.status)] += 1
            elif response.status >= 500:
                s["5xx"] += 1

    # -- lifecycle ----------------------------------------------------------------------
    def _listen(self, port: int, dispatch) -> str:
        server = _Server((self.host, port), _handler_for(dispatch))
        self._servers.append(server)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._threads.append(thread)
        thread.start()
        return f"http://{self.host}:{server.server_address[1]}"

    def start(self) -> "SandboxServer":
        self.urls["control"] = self._listen(self.base_port, self.control.dispatch)
        for endpoint, (broker, environment, offset) in ENDPOINTS.items():
            sim = self.sims.get(broker)
            if sim is None:
                continue
            port = self.base_port + offset if self.base_port else 0
            self.urls[endpoint] = self._listen(port, self._endpoint_dispatch(endpoint, sim, environment))
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def serve_forever(self) -> None:
        if not self._servers:
            self.start()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            self.stop()


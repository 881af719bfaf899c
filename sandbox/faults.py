"""Injectable failures, applied in front of a simulator: latency, 5xx, hangs past the
client's timeout, malformed bodies, 429 bursts. Deterministic for a given seed."""
from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from .http import Request, Response


@dataclass
class FaultPlan:
    target: str                      # endpoint name: "alpaca-paper", "binance", ... or "*"
    latency_ms: float = 0.0          # added to every answer
    error_rate: float = 0.0          # share of requests answered with `error_status`
    error_status: int = 503
    timeout_rate: float = 0.0        # share of requests that hang `hang_seconds` and then drop
    hang_seconds: float = 30.0
    malformed_rate: float = 0.0      # share of 200 answers whose body is cut in half
    burst_429: int = 0               # the next N requests get the broker's own 429
    retry_after: float = 1.0         # Retry-After sent with a burst 429
    fail_next: int = 0               # the next N requests get `error_status`
    path_contains: str = ""          # only requests whose path contains this
    skip_first: int = 0              # the first N of those pass untouched, then the plan applies
    seed: int = 0
    _rng: random.Random = field(default=None, repr=False, compare=False)   # type: ignore[assignment]

    def __post_init__(self):
        # The control API parses JSON numbers as Decimal; time.sleep and random want floats.
        for name in ("latency_ms", "error_rate", "timeout_rate", "hang_seconds", "malformed_rate", "retry_after"):
            setattr(self, name, float(getattr(self, name)))
        for name in ("error_status", "burst_429", "fail_next", "skip_first", "seed"):
            setattr(self, name, int(getattr(self, name)))
        self._rng = random.Random(self.seed)

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class FaultBoard:
    def __init__(self):
        self.plans: dict[str, FaultPlan] = {}
        self.lock = threading.Lock()
        self.injected: dict[str, int] = {}

    def set(self, plan: FaultPlan) -> None:
        with self.lock:
            self.plans[plan.target] = plan

    def clear(self, target: str | None = None) -> None:
        with self.lock:
            if target:
                self.plans.pop(target, None)
            else:
                self.plans.clear()

    def _count(self, what: str) -> None:
        self.injected[what] = self.injected.get(what, 0) + 1

    def apply(self, endpoint: str, request: Request, answer: Callable[[], Response],
              rate_limited: Callable[[float], Response], server_error: Callable[[int], Response]) -> Response | None:
        """Run `answer` through the endpoint's fault plan. None means: drop the connection."""
        plan = self.plans.get(endpoint) or self.plans.get("*")
        if plan is None or (plan.path_contains and plan.path_contains not in request.path):
            return answer()
        with self.lock:
            if plan.skip_first > 0:
                plan.skip_first -= 1
                return answer()
            roll = plan._rng.random()
            if plan.burst_429 > 0:
                plan.burst_429 -= 1
                self._count("429")
                return rate_limited(plan.retry_after)
            if plan.fail_next > 0:
                plan.fail_next -= 1
                self._count("5xx")
                return server_error(plan.error_status)
        if plan.latency_ms:
            time.sleep(plan.latency_ms / 1000)
        if roll < plan.timeout_rate:
            self._count("timeout")
            time.sleep(plan.hang_seconds)
            return None
        roll -= plan.timeout_rate
        if roll < plan.error_rate:
            self._count("5xx")
            return server_error(plan.error_status)
        roll -= plan.error_rate
        response = answer()
        if roll < plan.malformed_rate and response.status == 200 and len(response.body) > 2:
            self._count("malformed")
            response.body = response.body[: len(response.body) // 2]
        return response

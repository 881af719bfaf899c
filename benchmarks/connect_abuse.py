"""The attack of issue "one user can stall every user's Binance connects and syncs", repeated
against a running web process (gunicorn), a real worker and the sandbox at Binance's real
weight limit: one user sends bad-key connects as fast as 8 threads can, while a second user (from
another address) connects a good key halfway through and a third user's Binance sync runs.
Prints what each of them got. The web process trusts one proxy hop, and each user's
requests carry their own X-Forwarded-For, as behind a real proxy.

    python benchmarks/connect_abuse.py [--attempts 2000] [--threads 8]

Two rounds: as configured (throttles on), and with the API throttles lifted, which shows
what the reserved key-check budget alone holds (the syncs' share of the IP's weight)."""
from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BenchEnv  # noqa: E402
from sandbox.endpoints import port_free  # noqa: E402
from scripts import procs  # noqa: E402

ACCOUNT = {"broker": "binance", "environment": "live", "positions": 8, "activities": 400}
ADDRESSES = {"attacker": "203.0.113.10", "victim": "198.51.100.20"}
NO_THROTTLES = {scope: "1000000/min" for scope in ("connect", "connect_ip", "sync", "sync_ip", "login", "login_ip")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=2000, help="bad-key connects the attacker sends")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    env = BenchEnv(limits="real", concurrency=8)
    env.start()
    try:
        baseline = sync_seconds(env, seed=101)
        print(f"baseline: a third user's Binance sync alone took {baseline:.1f} s")
        results = {"baseline_sync_s": baseline}
        for label, extra in (("throttles on", {}), ("throttles lifted", {"API_THROTTLE_RATES_JSON": json.dumps(NO_THROTTLES)})):
            results[label] = attack_round(env, label, extra, args, seed=200 + len(results))
        Path(env.env.get("BENCH_OUT", "var/bench-connect-abuse.json")).write_text(json.dumps(results, indent=2))
    finally:
        env.stop()
    return 0


def attack_round(env: BenchEnv, label: str, extra_env: dict, args, seed: int) -> dict:
    web, api = start_web(env, extra_env)
    attacker, victim = (token_for(f"{label}-{name}") for name in ("attacker", "victim"))
    token_for(f"{label}-third")
    good = env.control("POST", "/accounts", {**ACCOUNT, "seed": seed})
    before = binance_requests(env)
    outcome: dict = {}
    sync_thread = threading.Thread(target=lambda: outcome.update(
        sync=sync_result(env, seed=seed + 1, user=f"{label}-third")))
    started = time.monotonic()
    with ThreadPoolExecutor(args.threads) as pool:
        futures = [pool.submit(bad_connect, api, attacker) for _ in range(args.attempts)]
        time.sleep(1.0)                                     # the attack is under way
        sync_thread.start()
        while sum(f.done() for f in futures) < args.attempts // 2:
            time.sleep(0.05)
        victim_answer = timed(lambda: requests.post(f"{api}/connections/", json={
            "broker": "binance", "environment": "live", **good["credentials"]},
            headers=auth(victim, ADDRESSES["victim"]), timeout=120))
        answers = [f.result() for f in futures]
    attack_s = time.monotonic() - started
    sync_thread.join()
    stop(web)
    codes = Counter(code for code, _ in answers)
    latencies = sorted(seconds for _, seconds in answers)
    figures = {
        "attempts": len(answers), "attack_s": round(attack_s, 1), "answers": dict(sorted(codes.items())),
        "attacker_latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "attacker_latency_max_ms": round(latencies[-1] * 1000, 1),
        "binance_requests_during_round": binance_requests(env) - before,
        "victim_connect": {"status": victim_answer[0].status_code, "seconds": round(victim_answer[1], 2)},
        "third_user_sync_s": round(outcome["sync"]["seconds"], 1),
        "third_user_sync_429s": outcome["sync"]["429"], "third_user_sync_requests": outcome["sync"]["requests"],
    }
    print(f"\n{label}: {figures['attempts']} bad-key connects in {figures['attack_s']} s -> {figures['answers']}; "
          f"attacker latency p50 {figures['attacker_latency_p50_ms']} ms, max {figures['attacker_latency_max_ms']} ms")
    print(f"  Binance requests during the round (all users): {figures['binance_requests_during_round']}")
    print(f"  another user's good-key connect: HTTP {figures['victim_connect']['status']} "
          f"in {figures['victim_connect']['seconds']} s")
    print(f"  a third user's Binance sync: {figures['third_user_sync_s']} s, {figures['third_user_sync_requests']} "
          f"requests, {figures['third_user_sync_429s']} answered 429")
    return figures


def bad_connect(api: str, token: str) -> tuple[int, float]:
    body = {"broker": "binance", "environment": "live", "api_key": secrets.token_hex(32),
            "api_secret": secrets.token_hex(32)}             # a new bad key each time: no cache helps
    response, seconds = timed(lambda: requests.post(f"{api}/connections/", json=body,
                                                    headers=auth(token, ADDRESSES["attacker"]), timeout=120))
    return response.status_code, seconds


def sync_seconds(env: BenchEnv, *, seed: int, user=None) -> float:
    return sync_result(env, seed=seed, user=user)["seconds"]


def sync_result(env: BenchEnv, *, seed: int, user=None) -> dict:
    from django.contrib.auth import get_user_model

    account = env.control("POST", "/accounts", {**ACCOUNT, "seed": seed})
    env.user = get_user_model().objects.get(username=user) if user else None
    result = env.timed_sync(env.connect("binance", account), "binance", timeout=1800)
    from django.db import connection

    connection.close()                   # this may be a thread of its own
    if result["state"] != "succeeded":
        raise SystemExit(f"the sync did not succeed: {result}")
    return result


def start_web(env: BenchEnv, extra_env: dict):
    port = next(p for p in range(8100, 8200) if port_free("127.0.0.1", p))
    web = procs.start("web", procs.web_cmd(port), {**env.env, "TRUSTED_PROXIES": "1", **extra_env},
                      Path("var/bench-web.log"))
    procs.wait_http(f"http://127.0.0.1:{port}/healthz", web, "web")
    return web, f"http://127.0.0.1:{port}/api/v1"


def stop(proc) -> None:
    proc.terminate()
    proc.wait(30)


def token_for(username: str) -> str:
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    user, _ = get_user_model().objects.get_or_create(username=username)
    return AuthToken.objects.create(user=user)[1]


def auth(token: str, address: str) -> dict:
    return {"Authorization": f"Token {token}", "X-Forwarded-For": address}


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def binance_requests(env: BenchEnv) -> int:
    return env.stats().get("binance", {}).get("requests", 0)


if __name__ == "__main__":
    sys.exit(main())

from backend.brokers.registry import ADAPTERS, get_adapter_class
from sandbox.brokers import BROKEN, SIMULATORS, _SIMULATORS


def test_every_simulator_loads():
    assert not BROKEN, BROKEN
    assert set(SIMULATORS) == set(_SIMULATORS) == {"alpaca", "coinbase", "binance", "kraken", "ibkr"}


def test_every_adapter_loads_and_has_a_simulator():
    for key in ADAPTERS:
        cls = get_adapter_class(key)
        assert cls.key == key
        assert key in SIMULATORS


def test_faults_set_through_the_control_api_take_json_numbers(sandbox):
    import requests

    answer = requests.post(sandbox.urls["control"] + "/control/faults",
                           json={"target": "*", "latency_ms": 30.5, "error_rate": 0.0, "seed": 2}, timeout=5)
    assert answer.status_code == 200
    started = __import__("time").monotonic()
    assert requests.get(sandbox.urls["alpaca-paper"] + "/v2/account", timeout=5).status_code == 401
    assert __import__("time").monotonic() - started >= 0.03

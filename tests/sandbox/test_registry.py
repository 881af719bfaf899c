from backend.brokers.registry import ADAPTERS, get_adapter_class
from sandbox.brokers import BROKEN, SIMULATORS, _SIMULATORS


def test_every_simulator_loads():
    assert not BROKEN, BROKEN
    assert set(SIMULATORS) == set(_SIMULATORS) == {"alpaca", "coinbase", "binance", "kraken"}


def test_every_adapter_loads_and_has_a_simulator():
    for key in ADAPTERS:
        cls = get_adapter_class(key)
        assert cls.key == key
        assert key in SIMULATORS

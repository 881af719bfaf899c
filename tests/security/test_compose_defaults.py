"""docker-compose.yml fails closed: real brokers unless the sandbox profile is asked for, no
default secret or password, Flower only on the host's loopback, ALLOWED_HOSTS required."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "beat", "flower")


def _required(value: str) -> bool:
    """${VAR:?message}: compose refuses to start without VAR and prints the message."""
    return value.startswith("${") and ":?" in value and value.endswith("}")


def test_every_app_process_talks_to_the_real_brokers_by_default():
    for name in APP_SERVICES:
        env = SERVICES[name]["environment"]
        assert env.get("BROKER_SANDBOX") in (None, "${BROKER_SANDBOX:-}"), name


def test_the_sandbox_starts_only_with_its_profile():
    assert SERVICES["sandbox"]["profiles"] == ["sandbox"]
    for name, service in SERVICES.items():
        if name != "sandbox":
            assert "profiles" not in service, name
            assert "sandbox" not in (service.get("depends_on") or {}), name


def test_secrets_and_hosts_have_no_defaults():
    for name in APP_SERVICES:
        env = SERVICES[name]["environment"]
        for var in ("SECRET_KEY", "FERNET_KEYS", "ALLOWED_HOSTS"):
            assert _required(env[var]), (name, var, env[var])
        assert env["BROKERSYNC_ENV"] == "production"


def test_flower_needs_credentials_runs_our_entry_point_and_is_published_on_loopback_only():
    flower = SERVICES["flower"]
    assert _required(flower["environment"]["FLOWER_BASIC_AUTH"])
    assert flower["environment"]["FLOWER_WRITE_API"] == "${FLOWER_WRITE_API:-false}"
    assert flower["command"][:3] == ["python", "-m", "workers.flower"]
    assert all(str(port).startswith("127.0.0.1:") for port in flower["ports"])
    assert all(str(port).startswith("127.0.0.1:") for port in SERVICES["sandbox"]["ports"])

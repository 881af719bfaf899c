"""docker-compose.yml stays complete (Docker itself does not run here; `make compose-check`
validates the file with the real Compose binary)."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_has_every_service_and_real_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat", "flower", "sandbox"}
    worker_queues = services["worker"]["command"][services["worker"]["command"].index("-Q") + 1].split(",")
    from workers.routing import all_queue_names

    assert sorted(worker_queues) == sorted(all_queue_names())
    assert services["sandbox"]["command"][:3] == ["python", "-m", "sandbox"]

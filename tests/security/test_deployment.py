"""Deployment fails closed: only the three known environments start, the dev keys never
leave local and test, and production settings pass Django's own deploy check."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {"BROKERSYNC_ENV": "production", "SECRET_KEY": "Zx9" + "q-7Lm2vB_8Kp4Rt6Yw1Nc3Hd5Fg0Js" * 2,
              "FERNET_KEYS": "pX5yA8wqQ0n6tR3vJk2mB9cD1eF4gH7iL0oP2sU5xZ8=", "ALLOWED_HOSTS": "brokersync.example.com"}
_SECRETS = ("SECRET_KEY", "FERNET_KEYS", "ALLOWED_HOSTS", "DEBUG", "BROKERSYNC_ENV", "SECURE_SSL_REDIRECT",
            "SECURE_HSTS_SECONDS", "DATABASE_URL")


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in _SECRETS}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "backend.config.settings", **env}, timeout=120)


@pytest.mark.parametrize("value", ["prod", "Production", "staging", ""])
def test_an_unknown_environment_refuses_to_start_and_names_the_allowed_ones(value):
    result = manage("check", **{**PRODUCTION, "BROKERSYNC_ENV": value})
    assert result.returncode != 0
    assert f"BROKERSYNC_ENV={value!r} is not one of local, test, production" in result.stderr


@pytest.mark.parametrize("missing, message", [
    ("SECRET_KEY", "production needs SECRET_KEY"),
    ("FERNET_KEYS", "production needs FERNET_KEYS"),
    ("ALLOWED_HOSTS", "production needs ALLOWED_HOSTS"),
])
def test_production_never_falls_back_to_a_dev_value(missing, message):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", **env)
    assert result.returncode != 0 and message in result.stderr


@pytest.mark.parametrize("override, message", [
    ({"SECRET_KEY": "insecure-dev-only-secret-key-do-not-use-in-production"}, "production needs SECRET_KEY"),
    ({"SECRET_KEY": "s" * 60}, "production needs SECRET_KEY"),                   # 1 distinct character
    ({"FERNET_KEYS": "new-key,insecure-dev-only-credential-key"}, "production needs FERNET_KEYS"),
    ({"ALLOWED_HOSTS": "*"}, "production needs ALLOWED_HOSTS"),
    ({"DEBUG": "true"}, "production refuses DEBUG=true"),
])
def test_production_refuses_public_or_weak_values(override, message):
    result = manage("check", **{**PRODUCTION, **override})
    assert result.returncode != 0 and message in result.stderr


def test_production_settings_pass_the_deploy_check_without_a_warning():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "WARNING" not in result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_behind_a_proxy_the_forwarded_proto_header_is_trusted_only_when_configured():
    script = "import django; django.setup(); from django.conf import settings as s; " \
             "print(getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
    clean = {k: v for k, v in os.environ.items() if k not in _SECRETS}
    run = lambda **env: subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,  # noqa: E731
                                       env={**clean, "DJANGO_SETTINGS_MODULE": "backend.config.settings",
                                            **PRODUCTION, **env}, timeout=60).stdout.strip()
    assert run() == "None"
    assert run(SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO") == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_swagger_ui_is_served_from_our_own_static_files(api, client):
    page = api.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost|testserver)", html), "a third-party URL"
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any("swagger-ui-bundle" in a for a in assets) and any("swagger-ui.css" in a for a in assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        b"".join(response.streaming_content) if response.streaming else response.content

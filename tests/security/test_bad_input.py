"""Every bad input is a 400 (or a 404/413) in the API's JSON shape, never a 500 or an HTML
page, and the schema says what the API accepts."""
from __future__ import annotations

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db
URL = "/api/v1/connections/"


@pytest.mark.parametrize("path", ["/api/v1/connections/abc/", "/api/v1/connections/1.5/sync/",
                                  "/api/v1/sync-runs/%F0%9F%92%A5/", "/api/v1/no-such-thing/", "/api/nothing"])
def test_paths_no_view_answers_are_json_404s(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": "Not found.", "fields": {}}


def test_outside_the_api_a_404_is_still_a_page(client):
    response = client.get("/admin-nothing/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_an_error_no_view_caught_is_a_json_500_without_details(api, monkeypatch):
    from backend.connections import apis

    def broken(**kwargs):
        raise RuntimeError("a secret-bearing detail")

    monkeypatch.setattr(apis, "connection_list", broken)
    api.raise_request_exception = False
    response = api.get(URL)
    assert response.status_code == 500
    assert response.json() == {"message": "Server error.", "fields": {}}


@pytest.mark.parametrize("depth", [100_000, 1_000, 33])
def test_json_nested_too_deep_is_a_400(api, depth):
    body = "[" * depth + "]" * depth
    response = api.generic("POST", URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"message": "JSON nested deeper than 32 levels.", "fields": {}}


def test_json_at_the_depth_limit_is_parsed(api):
    body = '{"label": "x", "nested": ' + "[" * 31 + "]" * 31 + "}"        # 32 levels in all
    response = api.generic("POST", URL, body, content_type="application/json")
    assert response.status_code == 400                       # parsed: it is the fields that are wrong
    assert "broker" in response.json()["fields"]


def test_a_body_over_the_limit_is_a_413_before_it_is_read(api, settings):
    body = '{"label": "' + "x" * settings.API_MAX_BODY_BYTES + '"}'
    response = api.generic("POST", URL, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["message"] == f"The request body is larger than {settings.API_MAX_BODY_BYTES} bytes."


@pytest.mark.parametrize("body", ['{"broker": "alpaca",', "NaN", '{"label": NaN}', "\xff\xfe"])
def test_malformed_json_is_a_400(api, body):
    response = api.generic("POST", URL, body.encode("latin-1"), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"].startswith("JSON parse error")


def test_the_schema_says_what_the_api_accepts_and_answers(tmp_path):
    import yaml

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    components = schema["components"]["schemas"]
    for name, fields in (("ConnectionCreateRequest", ("broker", "environment")), ("LoginRequest", ("username",
                                                                                                    "password"))):
        for field in fields:
            prop = components[name]["properties"][field]
            assert prop["minLength"] == 1 and prop["pattern"] == r"\S", (name, field)
    login = schema["paths"]["/api/v1/auth/token/"]["post"]
    assert set(login["responses"]) == {"200", "400", "429"}
    assert login.get("security", []) in ([], [{}])                  # no token needed to log in
    assert components["Token"]["required"] == ["expiry", "token"]
    connect = schema["paths"]["/api/v1/connections/"]["post"]
    assert {"400", "429", "503"} <= set(connect["responses"])
    assert "429" in schema["paths"]["/api/v1/connections/{connection_id}/sync/"]["post"]["responses"]
    assert "429" not in schema["paths"]["/api/v1/connections/"]["get"]["responses"]

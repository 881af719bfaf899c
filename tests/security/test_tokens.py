"""API tokens: stored as digests, expiring, revocable one by one or all at once, and logins
throttled per username and per client IP; the admin never shows a usable token."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import UserFactory, api_client_for

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"
LOGIN = "/api/v1/auth/token/"


@pytest.fixture
def person():
    user = UserFactory()
    user.set_password(PASSWORD)
    user.save()
    return user


def login(client, username, password=PASSWORD, ip="203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, format="json", REMOTE_ADDR=ip)


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_login_answers_a_token_with_its_expiry_and_stores_only_a_digest(person, settings):
    response = login(APIClient(), person.username)
    assert response.status_code == 200
    body = response.json()
    token, expiry = body["token"], body["expiry"]
    assert set(body) == {"token", "expiry"}
    # API_TOKEN_TTL_HOURS: a week by default
    assert abs(timezone.datetime.fromisoformat(expiry) - (timezone.now() + settings.REST_KNOX["TOKEN_TTL"])) \
        < timedelta(minutes=1)
    assert with_token(token).get("/api/v1/connections/").status_code == 200
    stored = AuthToken.objects.get(user=person)
    assert token not in (stored.digest, stored.token_key) and len(stored.token_key) < len(token)
    with connection.cursor() as cursor:                        # nowhere in the table, in any column
        cursor.execute("SELECT * FROM knox_authtoken")
        assert not any(token in str(value) for row in cursor.fetchall() for value in row)


def test_a_wrong_password_is_a_400_with_a_message_and_no_token(person):
    response = login(APIClient(), person.username, "wrong")
    assert response.status_code == 400
    assert response.json()["fields"] == {"non_field_errors": ["Unable to log in with the given username and "
                                                              "password."]}
    assert not AuthToken.objects.filter(user=person).exists()


def test_an_expired_token_is_refused(person):
    instance, token = AuthToken.objects.create(user=person, expiry=timedelta(seconds=-1))
    response = with_token(token).get("/api/v1/connections/")
    assert response.status_code == 401
    assert not AuthToken.objects.filter(pk=instance.pk).exists()       # and forgotten


def test_the_old_plain_text_token_table_is_gone():
    assert "authtoken_token" not in connection.introspection.table_names()


def test_logout_revokes_only_the_token_in_use(person, other_user):
    first, second = login(APIClient(), person.username).json()["token"], login(APIClient(), person.username).json()["token"]
    theirs = api_client_for(other_user)

    assert with_token(first).post("/api/v1/auth/logout/").status_code == 204

    assert with_token(first).get("/api/v1/connections/").status_code == 401
    assert with_token(second).get("/api/v1/connections/").status_code == 200
    assert theirs.get("/api/v1/connections/").status_code == 200


def test_logout_all_revokes_every_token_of_the_user_and_no_one_elses(person, other_user):
    tokens = [login(APIClient(), person.username).json()["token"] for _ in range(3)]
    theirs = api_client_for(other_user)

    assert with_token(tokens[0]).post("/api/v1/auth/logout-all/").status_code == 204

    assert all(with_token(t).get("/api/v1/connections/").status_code == 401 for t in tokens)
    assert theirs.get("/api/v1/connections/").status_code == 200
    assert AuthToken.objects.filter(user=other_user).count() == 1


def test_logout_needs_a_token(client):
    assert client.post("/api/v1/auth/logout/").status_code == 401
    assert client.post("/api/v1/auth/logout-all/").status_code == 401


def test_guessing_one_users_password_is_throttled_across_ips_then_the_right_one_waits(person, settings):
    # login: 10/hour per username. Ten wrong guesses from ten addresses...
    for n in range(10):
        assert login(APIClient(), person.username, f"guess-{n}", ip=f"198.51.100.{n}").status_code == 400
    # ...then even the right password is a 429 with Retry-After, and no token is made.
    response = login(APIClient(), person.username, ip="192.0.2.1")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 3600
    assert response.json()["message"].startswith("Request was throttled")
    assert not AuthToken.objects.filter(user=person).exists()
    assert login(APIClient(), person.username.upper(), ip="192.0.2.2").status_code == 429   # names are not case games
    other = UserFactory()
    other.set_password(PASSWORD)
    other.save()
    assert login(APIClient(), other.username, ip="192.0.2.3").status_code == 200            # others log in


def test_one_address_trying_many_usernames_is_throttled(person):
    # login_ip: 30/min per client address.
    for n in range(30):
        assert login(APIClient(), f"nobody{n}", ip="203.0.113.99").status_code == 400
    assert login(APIClient(), person.username, ip="203.0.113.99").status_code == 429
    assert login(APIClient(), person.username, ip="203.0.113.100").status_code == 200


def test_a_token_header_that_is_not_utf8_is_a_401(client):
    response = client.get("/api/v1/connections/", HTTP_AUTHORIZATION="Token caf\xe9\xff")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid token."


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_the_admin_lists_tokens_without_a_usable_one_and_cannot_add_one(admin_client, person):
    instance, token = AuthToken.objects.create(user=person)
    listing = admin_client.get("/admin/knox/authtoken/").content.decode()
    detail = admin_client.get(f"/admin/knox/authtoken/{instance.pk}/change/")
    assert person.username in listing and detail.status_code == 200
    for page in (listing, detail.content.decode()):
        assert token not in page and instance.token_key not in page
    # The digest is the row's key (it is in the page's links), and it opens nothing:
    assert with_token(instance.digest).get("/api/v1/connections/").status_code == 401
    assert admin_client.get("/admin/knox/authtoken/add/").status_code == 403
    # an admin may revoke a token (delete)
    assert admin_client.post(f"/admin/knox/authtoken/{instance.pk}/delete/", {"post": "yes"}).status_code == 302
    assert with_token(token).get("/api/v1/connections/").status_code == 401

"""The one table that decides what an error means for a step."""
from django.db import OperationalError

from backend.brokers.errors import AuthError, BadRecord, PermanentError, RateLimited, TransientError
from workers.retry import decide


def test_auth_halts_permanent_fails(settings):
    assert decide(AuthError("revoked"), 0).action == "halt"
    assert decide(PermanentError("422"), 0).action == "fail"
    assert decide(BadRecord("?"), 0).action == "fail"
    assert decide(KeyError("bug"), 0).action == "fail"


def test_transient_and_database_errors_retry_with_capped_jittered_backoff(settings):
    settings.SYNC_STEP_MAX_RETRIES = 3
    settings.SYNC_RETRY_BACKOFF_CAP = 10
    for error in (TransientError("503"), OperationalError("server closed the connection")):
        delays = [decide(error, n) for n in range(3)]
        assert all(d.action == "retry" and 0 <= d.countdown <= 10 for d in delays)
        assert decide(error, 3).action == "fail"


def test_rate_limited_waits_as_asked_with_a_larger_allowance(settings):
    settings.SYNC_STEP_MAX_RETRIES = 3
    settings.SYNC_STEP_MAX_RATE_LIMITED_RETRIES = 10
    decision = decide(RateLimited("429", retry_after=42), 5)
    assert decision.action == "retry" and 42 <= decision.countdown <= 44
    assert decide(RateLimited("429", retry_after=1), 10).action == "fail"

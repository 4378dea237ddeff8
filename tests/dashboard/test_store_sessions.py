"""Sessions, login limits, registration and the audited registry edit (store modules the dashboard uses)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from limits import RateLimitItemPerMinute
from sqlmodel import select

from store import accounts, audit, credits, registry, sessions
from store.errors import Conflict, InvalidInput
from store.models import ModelAudit, UserSession
from store.money import parse_credits

from ..conftest import REDIS_URL, TEST_SECRET, require
from ..factories import make_user

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@both_databases
def test_session_token_is_stored_only_as_its_hmac(session, engine):
    user = make_user(engine)
    token = sessions.create_session(session, secret_key=TEST_SECRET, user_id=user.id)
    row = session.exec(select(UserSession)).one()
    assert token not in row.token_hash and row.token_hash == sessions.hash_token(TEST_SECRET, token)
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=token).id == user.id
    assert sessions.resolve_session(session, secret_key="another-secret-0123456789", token=token) is None
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=token + "x") is None
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=None) is None


@both_databases
def test_expired_session_signs_nobody_in_and_is_cleaned_up(session, engine):
    user = make_user(engine)
    old = sessions.create_session(session, secret_key=TEST_SECRET, user_id=user.id, ttl=timedelta(seconds=-1))
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=old) is None
    sessions.create_session(session, secret_key=TEST_SECRET, user_id=user.id)
    assert len(session.exec(select(UserSession)).all()) == 1  # the expired one went


@both_databases
def test_sign_out_ends_one_session_and_end_user_sessions_ends_all(session, engine):
    user, other = make_user(engine), make_user(engine)
    a, b = (sessions.create_session(session, secret_key=TEST_SECRET, user_id=user.id) for _ in range(2))
    c = sessions.create_session(session, secret_key=TEST_SECRET, user_id=other.id)
    assert sessions.end_session(session, secret_key=TEST_SECRET, token=a) is True
    assert sessions.end_session(session, secret_key=TEST_SECRET, token=a) is False
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=a) is None
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=b) is not None
    assert sessions.end_user_sessions(session, user_id=user.id) == 1
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=b) is None
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=c).id == other.id


@both_databases
def test_register_makes_a_plain_user_with_signup_credits_through_the_ledger(session):
    user = accounts.register(session, email=" New@Example.com ", password="long enough", signup_credits=25_500_000)
    assert (user.email, user.is_admin, user.balance) == ("new@example.com", False, 25_500_000)
    assert credits.ledger_sum(session, user_id=user.id) == 25_500_000
    with pytest.raises(Conflict):
        accounts.register(session, email="new@example.com", password="long enough")
    with pytest.raises(InvalidInput):
        accounts.register(session, email="short@example.com", password="short")
    with pytest.raises(InvalidInput):
        accounts.register(session, email="long@example.com", password="é" * 37)  # 74 bytes


@both_databases
def test_authenticate(session):
    accounts.register(session, email="a@example.com", password="right password")
    assert accounts.authenticate(session, email="A@example.com ", password="right password").email == "a@example.com"
    assert accounts.authenticate(session, email="a@example.com", password="wrong password") is None
    assert accounts.authenticate(session, email="nobody@example.com", password="right password") is None
    assert accounts.authenticate(session, email="not an email", password="right password") is None


@both_databases
def test_edit_model_writes_the_audit_row_with_the_change(session):
    entry, _ = registry.set_model(
        session, actor="admin@example.com", actor_user_id=7, model_id="openai/gpt-5", credit_cost=parse_credits("0.046")
    )
    assert entry.credit_cost == 46_000
    row = session.exec(select(ModelAudit).where(ModelAudit.actor != "seed")).one()
    assert (row.actor, row.actor_user_id, row.model_id) == ("admin@example.com", 7, "openai/gpt-5")
    assert audit.changed_fields(row) == {"credit_cost": (3_000_000, 46_000)}


@both_databases
def test_edit_model_that_fails_or_changes_nothing_records_nothing(session):
    with pytest.raises(InvalidInput):
        registry.set_model(session, actor="a", actor_user_id=1, model_id="openai/gpt-5", credit_cost=-1)
    registry.set_model(session, actor="a", actor_user_id=1, model_id="openai/gpt-5", credit_cost=3_000_000)
    assert {r.actor for r in session.exec(select(ModelAudit))} == {"seed"}  # only the default registry
    assert registry.get_model(session, model_id="openai/gpt-5").credit_cost == 3_000_000


@both_databases
def test_adding_a_model_is_audited_with_no_before(session):
    registry.set_model(
        session,
        actor="a",
        actor_user_id=1,
        model_id="acme/new",
        category="chat",
        provider="openrouter",
        credit_cost=2_500_000,
    )
    row = audit.recent_changes(session)[0]
    assert row.before is None and row.after["credit_cost"] == 2_500_000


async def test_login_limiter_per_client_and_per_email_failures():
    limiter = accounts.LoginLimiter(per_client=RateLimitItemPerMinute(5), per_email_failures=RateLimitItemPerMinute(2))
    assert await limiter.attempt(client="1.1.1.1", email="a@x.io") is None
    await limiter.failed(email="a@x.io", client="2.2.2.2")
    await limiter.failed(email="a@x.io", client="2.2.2.2")
    refusal = await limiter.attempt(client="2.2.2.2", email="a@x.io")
    assert refusal.reason == "email" and 0 < refusal.retry_after_s <= 60
    assert await limiter.attempt(client="2.2.2.2", email="b@x.io") is None  # other emails go on
    assert await limiter.attempt(client="3.3.3.3", email="a@x.io") is None  # and the email from elsewhere
    await limiter.succeeded(email="a@x.io", client="2.2.2.2")
    assert await limiter.attempt(client="2.2.2.2", email="a@x.io") is None
    for _ in range(5):
        assert await limiter.attempt(client="9.9.9.9") is None
    assert (await limiter.attempt(client="9.9.9.9", email="c@x.io")).reason == "client"


@pytest.mark.redis
async def test_login_limits_are_shared_through_redis():
    url = require(REDIS_URL, "TEST_REDIS_URL")
    namespace = f"test-login-{uuid.uuid4().hex}"
    one, two = (accounts.LoginLimiter(url, per_client=RateLimitItemPerMinute(3), namespace=namespace) for _ in range(2))
    for limiter in (one, two, one):
        assert await limiter.attempt(client="5.5.5.5") is None
    assert (await two.attempt(client="5.5.5.5")).reason == "client"

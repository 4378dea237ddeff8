"""Account rules in the store: the password change that ends every session, and the wait after failures."""

from __future__ import annotations

import uuid

import pytest
from limits import RateLimitItemPerMinute

from store import accounts, sessions
from store.errors import InvalidInput, WrongPassword
from store.models import User

from ..conftest import REDIS_URL, TEST_SECRET, require
from ..factories import make_user

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
OLD, NEW = "the old password", "the new password"


@both_databases
def test_change_password_ends_every_session_of_that_user_only(session, engine):
    user, other = make_user(engine, password=OLD), make_user(engine)
    mine = [sessions.create_session(session, secret_key=TEST_SECRET, user_id=user.id) for _ in range(2)]
    theirs = sessions.create_session(session, secret_key=TEST_SECRET, user_id=other.id)
    assert accounts.change_password(session, user_id=user.id, current_password=OLD, new_password=NEW) == 2
    assert [sessions.resolve_session(session, secret_key=TEST_SECRET, token=t) for t in mine] == [None, None]
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=theirs).id == other.id
    assert accounts.authenticate(session, email=user.email, password=OLD) is None
    assert accounts.authenticate(session, email=user.email, password=NEW).id == user.id


@both_databases
@pytest.mark.parametrize(
    "current, new, error",
    [
        ("not the password", NEW, WrongPassword),
        ("", NEW, WrongPassword),
        (OLD, "short", InvalidInput),
        (OLD, "é" * 37, InvalidInput),  # 74 bytes
        (OLD, OLD, InvalidInput),
    ],
)
def test_a_refused_change_changes_nothing(session, engine, current, new, error):
    user = make_user(engine, password=OLD)
    token = sessions.create_session(session, secret_key=TEST_SECRET, user_id=user.id)
    before = session.get(User, user.id).password_hash
    with pytest.raises(error):
        accounts.change_password(session, user_id=user.id, current_password=current, new_password=new)
    session.expire_all()
    assert session.get(User, user.id).password_hash == before
    assert sessions.resolve_session(session, secret_key=TEST_SECRET, token=token).id == user.id


def test_a_change_over_a_password_that_changed_meanwhile_is_refused(session, engine, monkeypatch):
    """Two changes at once, both checking the old password: the second finds it gone."""
    user = make_user(engine, password=OLD)
    check = accounts.users.check_password

    def check_then_someone_else_changes_it(password, password_hash):
        ok = check(password, password_hash)
        with session.bind.connect() as conn:  # another request's change lands between check and write
            conn.execute(User.__table__.update().where(User.id == user.id).values(password_hash="$2b$other"))
            conn.commit()
        return ok

    monkeypatch.setattr(accounts.users, "check_password", check_then_someone_else_changes_it)
    with pytest.raises(WrongPassword):
        accounts.change_password(session, user_id=user.id, current_password=OLD, new_password=NEW)
    session.expire_all()
    assert session.get(User, user.id).password_hash == "$2b$other"


def test_failure_delay_starts_after_three_failures_grows_and_is_capped():
    assert [accounts.failure_delay(n) for n in range(14)] == [
        0,
        0,
        0,
        0,
        0.25,
        0.5,
        0.75,
        1.0,
        1.25,
        1.5,
        1.75,
        2.0,
        2.0,
        2.0,
    ]
    assert accounts.failure_delay(10_000) == accounts.MAX_DELAY_S == 2.0


async def test_recent_failures_per_client_and_per_email():
    limiter = accounts.LoginLimiter()
    for email in ("a@x.io", "b@x.io", "c@x.io"):
        await limiter.failed(email=email, client="1.1.1.1")
    await limiter.failed(email="a@x.io", client="2.2.2.2")
    assert await limiter.recent_failures(client="1.1.1.1") == 3
    assert await limiter.recent_failures(client="3.3.3.3", email="a@x.io") == 2  # the email's count
    assert await limiter.recent_failures(client="1.1.1.1", email="a@x.io") == 3  # the larger one
    await limiter.succeeded(email="a@x.io", client="3.3.3.3")  # clears the email, not the client
    assert await limiter.recent_failures(client="3.3.3.3", email="a@x.io") == 0
    assert await limiter.recent_failures(client="1.1.1.1", email="a@x.io") == 3


async def test_an_emails_failures_refuse_only_the_client_they_came_from():
    limiter = accounts.LoginLimiter(per_email_failures=RateLimitItemPerMinute(3, 15))
    for _ in range(3):
        await limiter.failed(email="a@x.io", client="6.6.6.6")
    refusal = await limiter.attempt(client="6.6.6.6", email="a@x.io")
    assert refusal is not None and refusal.reason == "email" and 0 < refusal.retry_after_s <= 900
    assert await limiter.attempt(client="7.7.7.7", email="a@x.io") is None
    assert await limiter.recent_failures(client="7.7.7.7", email="a@x.io") == 3  # it still slows them


@pytest.mark.redis
async def test_failures_are_counted_through_redis_for_every_worker():
    url = require(REDIS_URL, "TEST_REDIS_URL")
    namespace = f"test-login-{uuid.uuid4().hex}"
    one, two = (
        accounts.LoginLimiter(url, per_email_failures=RateLimitItemPerMinute(5), namespace=namespace) for _ in range(2)
    )
    await one.failed(email="a@x.io", client="5.5.5.5")
    await two.failed(email="a@x.io", client="6.6.6.6")
    assert await one.recent_failures(client="7.7.7.7", email="a@x.io") == 2
    assert await two.recent_failures(client="5.5.5.5") == 1

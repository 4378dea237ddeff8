"""Key format, hashing and verification rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store import keys
from store.errors import InvalidInput, NotFound

from ..conftest import TEST_SECRET
from ..factories import make_user


def test_generated_keys_have_the_spec_format():
    for _ in range(50):
        raw = keys.generate_key()
        assert raw.startswith("sk_live_") and len(raw) - len("sk_live_") >= 32
        assert keys.is_well_formed(raw)


@given(st.text(max_size=80))
def test_arbitrary_text_is_not_a_key_unless_well_formed(text):
    import re

    assert keys.is_well_formed(text) == bool(re.fullmatch(r"sk_live_[A-Za-z0-9_-]{32,120}", text))


def test_issue_and_verify(session, engine):
    user = make_user(engine)
    issued = keys.issue_key(session, secret_key=TEST_SECRET, user_id=user.id, name="k", rate_limit_per_minute=5)
    record = keys.verify_key(session, secret_key=TEST_SECRET, raw=issued.secret)
    assert (record.user_id, record.prefix, record.rate_limit_per_minute, record.usable) == (
        user.id,
        issued.secret[:12],
        5,
        True,
    )
    assert keys.verify_key(session, secret_key="another-secret-0123456789", raw=issued.secret) is None
    tampered = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    assert keys.verify_key(session, secret_key=TEST_SECRET, raw=tampered) is None


def test_disable_revoke_and_ownership(session, engine):
    owner, other = make_user(engine), make_user(engine)
    issued = keys.issue_key(session, secret_key=TEST_SECRET, user_id=owner.id, name="k", rate_limit_per_minute=0)
    with pytest.raises(NotFound):
        keys.revoke_key(session, key_id=issued.key.id, user_id=other.id)
    keys.set_key_enabled(session, key_id=issued.key.id, enabled=False, user_id=owner.id)
    assert keys.verify_key(session, secret_key=TEST_SECRET, raw=issued.secret).usable is False
    keys.revoke_key(session, key_id=issued.key.id, user_id=owner.id)
    assert keys.verify_key(session, secret_key=TEST_SECRET, raw=issued.secret) is None
    with pytest.raises(InvalidInput):
        keys.set_key_enabled(session, key_id=issued.key.id, enabled=True)


@pytest.mark.parametrize("name,rpm", [("", 5), ("x" * 101, 5), ("ok", -1), ("ok", 10**7), ("ok", True)])
def test_invalid_key_fields_change_nothing(session, engine, name, rpm):
    user = make_user(engine)
    with pytest.raises(InvalidInput):
        keys.issue_key(session, secret_key=TEST_SECRET, user_id=user.id, name=name, rate_limit_per_minute=rpm)
    assert keys.list_keys(session, user_id=user.id) == []


def test_verification_does_the_same_work_whether_the_prefix_exists_or_not(session, engine):
    """No early exit on a known prefix: both lookups run one identical query by HMAC."""
    import sqlalchemy as sa

    user = make_user(engine)
    issued = keys.issue_key(session, secret_key=TEST_SECRET, user_id=user.id, name="k", rate_limit_per_minute=0)
    known_prefix = issued.secret[:12] + "Z" * (len(issued.secret) - 12)
    unknown_prefix = "sk_live_" + "Q" * (len(issued.secret) - 8)
    seen: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if not statement.startswith("BEGIN"):  # a transaction's start (store.db), not the lookup
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        assert keys.verify_key(session, secret_key=TEST_SECRET, raw=known_prefix) is None
        first = list(seen)
        seen.clear()
        assert keys.verify_key(session, secret_key=TEST_SECRET, raw=unknown_prefix) is None
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert [s for s, _ in first] == [s for s, _ in seen] and len(seen) == 1
    for _, params in first + seen:
        assert not any(isinstance(p, str) and p.startswith("sk_live_") for p in params)

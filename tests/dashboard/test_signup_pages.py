"""The sign-up and sign-in pages under each SIGNUP_POLICY: whether the sign-up form shows,
what the page says instead, the invite it carries in its hidden field, and the sign-in
page's note after a sign-up without script."""

from __future__ import annotations

import pytest

from dashboard.auth_routes import NOTICES
from dashboard.pages.auth import (
    CLOSED,
    INVITE_IGNORED,
    INVITE_INVALID,
    INVITE_NEEDED,
    AuthPageState,
    invite_note,
)
from store import invites
from store.db import session_for
from store.money import MICRO
from store.settings import get_settings

from ..conftest import TEST_SECRET
from .conftest import cookie_for, redirect_target, state_for

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def policy(dash_settings, monkeypatch):
    def set_policy(value: str) -> None:
        monkeypatch.setenv("SIGNUP_POLICY", value)
        get_settings.cache_clear()

    return set_policy


def invite_token(engine, credits_: int = 0) -> str:
    with session_for(engine) as s:
        return invites.create_invite(s, secret_key=TEST_SECRET, credits_=credits_).token


def used_token(engine) -> str:
    token = invite_token(engine)
    with session_for(engine) as s:
        invites.withdraw_invite(s, invite_id=invites.check_invite(s, secret_key=TEST_SECRET, token=token).id)
    return token


async def sign_up_page(query: str = "") -> AuthPageState:
    state = state_for(AuthPageState, path=f"/register{query}")
    assert await state.load() is None
    return state


@both_databases
@pytest.mark.parametrize("value", ["open", "invite", "closed"])
async def test_a_valid_invite_fills_the_hidden_field_unless_sign_up_is_closed(value, policy, engine):
    policy(value)
    token = invite_token(engine, credits_=5 * MICRO)
    state = await sign_up_page(f"?invite={token}")
    if value == "closed":
        assert (state.signup_form, state.signup_closed, state.signup_note, state.invite) == (False, True, CLOSED, "")
    else:
        assert (state.signup_form, state.signup_closed, state.invite) == (True, False, token)
        assert state.signup_note == "You are signing up with an invite: it adds 5 credits to your account."


@both_databases
@pytest.mark.parametrize(
    "value, which, form, note",
    [
        ("open", "none", True, ""),
        ("open", "used", True, INVITE_IGNORED),
        ("open", "mistyped", True, INVITE_IGNORED),
        ("invite", "none", False, INVITE_NEEDED),
        ("invite", "used", False, INVITE_INVALID),
        ("invite", "mistyped", False, INVITE_INVALID),
        ("closed", "none", False, CLOSED),
    ],
)
async def test_without_a_valid_invite(value, which, form, note, policy, engine):
    policy(value)
    query = {"none": "", "used": f"?invite={used_token(engine)}", "mistyped": "?invite=not-a-token"}[which]
    state = await sign_up_page(query)
    assert (state.signup_form, state.signup_note, state.invite) == (form, note, "")


def test_an_invite_without_credits_says_so_plainly():
    assert invite_note(0) == "You are signing up with an invite."


@both_databases
async def test_the_routes_refusal_is_not_said_twice(policy, engine):
    policy("invite")
    state = await sign_up_page("?error=invite")
    assert (state.error, state.signup_note) == ("", INVITE_NEEDED)
    policy("open")
    state = await sign_up_page("?error=email")
    assert state.error == "Enter a valid email address." and state.signup_form


@both_databases
async def test_the_sign_in_page_after_a_sign_up_without_script(policy, engine):
    policy("open")
    state = state_for(AuthPageState, path="/login?registered=1")
    await state.load()
    assert state.notice == NOTICES["registered"] and state.error == ""
    state = state_for(AuthPageState, path="/login?registered=1&error=credentials")
    await state.load()
    assert (state.notice, state.error) == ("", "Wrong email or password.")
    policy("closed")
    state = state_for(AuthPageState, path="/login")
    await state.load()
    assert state.signup_closed is True  # no "Sign up" link


@both_databases
async def test_a_signed_in_visitor_of_sign_up_goes_home(user, engine):
    state = state_for(AuthPageState, cookie=cookie_for(engine, user), path=f"/register?invite={invite_token(engine)}")
    assert redirect_target(await state.load()) == "/"
    assert state.invite == ""

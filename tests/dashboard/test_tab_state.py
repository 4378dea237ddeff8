"""A new key never sits in a tab's Reflex state, and a tab's state goes only to its owner's cookie."""

from __future__ import annotations

import httpx
import pytest
import reflex as rx
from limits import RateLimitItemPerMinute
from reflex_base.event import Event

from dashboard.auth_routes import RATE_LIMIT_ERROR
from dashboard.pages.api_keys import KeysState
from dashboard.pages.logs import LogsState
from dashboard.state import SessionState
from dashboard.tab_guard import TabOwnerGuard
from store import accounts, keys, logs
from store.db import session_for

from ..conftest import TEST_SECRET
from ..factories import make_key, make_user
from .conftest import cookie_for, set_connection, state_for
from .test_auth_routes import serving
from .test_states import snapshot
from .test_store_usage import log


def every_state(root: rx.State) -> list[rx.State]:
    return [root, *(s for sub in root.substates.values() for s in every_state(sub))]


def stored_bytes(state: rx.State) -> bytes:
    """What a state manager writes for this tab (each state pickled, to `.states/` or Redis)."""
    return b"".join(s._serialize() for s in every_state(state._get_root_state()))


def sent_text(state: rx.State) -> str:
    """What a hydrate sends: the whole tree's vars."""
    return repr(state._get_root_state().dict())


@pytest.fixture
async def web(dash_settings):
    limiter = accounts.LoginLimiter(per_client=RateLimitItemPerMinute(50))
    async with serving(limiter, []) as client:
        yield client


async def create_through_the_route(web: httpx.AsyncClient, cookie: str, **form) -> httpx.Response:
    return await web.post("/auth/keys", data=form, headers={"cookie": cookie, "origin": "http://platform.test"})


async def test_a_new_key_never_enters_the_tab_state(web, user, engine):
    cookie = cookie_for(engine, user)
    state = state_for(KeysState, cookie=cookie, path="/settings/api-keys")
    await state.load()
    await state.create_key({"name": "laptop", "rate_limit": "30"})  # the form's submit
    assert b"sk_live_" not in stored_bytes(state) and "sk_live_" not in sent_text(state)
    # The page script posts the form; the route answers the key, this once.
    response = await create_through_the_route(web, cookie, name="laptop", rate_limit="30")
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    body = response.json()
    secret = body["key"]
    assert body["name"] == "laptop" and secret.startswith("sk_live_") and len(secret) >= 40
    with session_for(engine) as s:
        assert keys.verify_key(s, secret_key=TEST_SECRET, raw=secret).rate_limit_per_minute == 30
    await state.key_created({"name": "laptop"})  # what the script tells the state
    [row] = state.keys
    assert (row.name, row.rate_limit, row.status, row.display) == (
        "laptop",
        "30/min",
        "active",
        f"{secret[:12]}…{secret[-4:]}",
    )
    assert state.new_key_name == "laptop" and state.error == ""
    # Only the prefix and last 4 are there (the list shows them); nothing in between.
    assert secret[12:-4].encode() not in stored_bytes(state) and secret[12:-4] not in sent_text(state)
    state.dismiss_new_key()
    assert state.new_key_name == ""


@pytest.mark.parametrize(
    "form, message",
    [
        ({"name": "", "rate_limit": "60"}, "Key name must not be empty."),
        ({"name": "x" * 101, "rate_limit": "60"}, "Key name must be at most 100 characters."),
        ({"name": "ok", "rate_limit": "-1"}, RATE_LIMIT_ERROR),
        ({"name": "ok", "rate_limit": "²"}, RATE_LIMIT_ERROR),
        ({"name": "ok"}, RATE_LIMIT_ERROR),
    ],
)
async def test_a_bad_key_form_is_a_400_with_a_message_and_creates_nothing(web, user, engine, form, message):
    response = await create_through_the_route(web, cookie_for(engine, user), **form)
    assert (response.status_code, response.json()) == (400, {"error": message})
    assert snapshot(engine)["keys"] == []
    state = state_for(KeysState, cookie=cookie_for(engine, user))
    await state.key_created(response.json())
    assert state.error == message and state.new_key_name == ""


async def test_the_key_route_needs_a_session_and_refuses_another_site(web, user, engine):
    assert (await create_through_the_route(web, "", name="k", rate_limit="1")).status_code == 401
    foreign = await web.post(
        "/auth/keys",
        data={"name": "k", "rate_limit": "1"},
        headers={"cookie": cookie_for(engine, user), "origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and snapshot(engine)["keys"] == []


# ---------------------------------------------------------------- whose tab state


async def owned_tab(engine, owner) -> rx.State:
    """A tab on the Logs page, loaded by `owner`: their key name and log rows are in its state."""
    make_key(engine, owner, name="owner-secret-key-name")
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(owner.id, 1, model="owner/private-model")])
    state = state_for(LogsState, cookie=cookie_for(engine, owner), path="/logs")
    await state.load()
    assert "owner/private-model" in sent_text(state)
    return state._get_root_state()


@pytest.mark.parametrize("cookie", ["none", "someone else's", "forged"])
async def test_a_hydrate_without_the_owners_cookie_gets_none_of_the_tab_state(user, engine, cookie):
    root = await owned_tab(engine, user)
    other = make_user(engine)
    header = {"none": "", "someone else's": cookie_for(engine, other), "forged": "platform_session=forged"}[cookie]
    set_connection(root, cookie=header, path="/logs")
    hydrate = Event(name=f"{rx.State.get_full_name()}.hydrate_and_load", payload={})
    assert await TabOwnerGuard().preprocess(app=None, state=root, event=hydrate) is None
    snapshot_sent = sent_text(root)
    for secret in ("owner/private-model", "owner-secret-key-name", user.email):
        assert secret not in snapshot_sent
    assert (await root.get_state(SessionState))._user_id == 0


async def test_the_owners_own_hydrate_keeps_the_tab_state(user, engine):
    root = await owned_tab(engine, user)
    set_connection(root, cookie=cookie_for(engine, user), path="/logs")
    hydrate = Event(name=f"{rx.State.get_full_name()}.hydrate_and_load", payload={})
    assert await TabOwnerGuard().preprocess(app=None, state=root, event=hydrate) is None
    assert "owner/private-model" in sent_text(root)

"""Every event handler against an expired session, every admin handler against a plain user,
and the Account page.

The tables below name every handler of every page state; a new handler fails
`test_every_handler_is_in_these_tables` until it is added to them, so it gets these
checks too.
"""

from __future__ import annotations

import inspect

import pytest

from dashboard.pages.account import CHANGED, AccountState
from dashboard.pages.admin_invites import InvitesAdminState
from dashboard.pages.admin_margin import MarginAdminState
from dashboard.pages.admin_models import ModelsAdminState
from dashboard.pages.admin_usage import UsageAdminState
from dashboard.pages.admin_user import UserAdminState
from dashboard.pages.admin_users import UsersAdminState
from dashboard.pages.api_keys import KeysState
from dashboard.pages.auth import AuthPageState
from dashboard.pages.credits import CreditsState
from dashboard.pages.images import ImagesState
from dashboard.pages.logs import LogsState
from dashboard.pages.overview import OverviewState
from dashboard.state import SessionState, admin_required, viewer_required
from store import credits, keys, logs, usage
from store.db import session_for

from ..factories import make_key
from .conftest import cookie_for, expire_sessions, redirect_target, state_for
from .test_states import ADMIN_CALLS, INVITE, USER, make_invite, snapshot
from .test_store_usage import log

KEY, LOG = object(), object()  # the signed-in person's own key id and newest log row id

USER_CALLS = [
    (OverviewState, "load", ()),
    (AuthPageState, "load", ()),
    (KeysState, "load", ()),
    (KeysState, "create_key", ({"name": "new", "rate_limit": "1"},)),
    (KeysState, "key_created", ({"name": "new"},)),
    (KeysState, "set_enabled", (KEY, False)),
    (KeysState, "revoke_key", (KEY,)),
    (KeysState, "start_edit", (KEY,)),
    (KeysState, "save_key", ({"key_id": KEY, "name": "renamed", "rate_limit": "1", "budget": "5"},)),
    (CreditsState, "load", ()),
    (CreditsState, "set_threshold", ({"threshold": "5"},)),
    (CreditsState, "next_page", ()),
    (CreditsState, "previous_page", ()),
    (LogsState, "load", ()),
    (LogsState, "apply_filters", ({"status": "5xx"},)),
    (LogsState, "clear_filters", ()),
    (LogsState, "next_page", ()),
    (LogsState, "previous_page", ()),
    (LogsState, "show_detail", (LOG,)),
    (ImagesState, "load", ()),
    (ImagesState, "refresh", ()),
    (ImagesState, "next_page", ()),
    (ImagesState, "previous_page", ()),
    (AccountState, "load", ()),
    (ModelsAdminState, "load", ()),
    (UsersAdminState, "load", ()),
    (MarginAdminState, "load", ()),
    (UsageAdminState, "load", ()),
    (UserAdminState, "load", ()),
    (InvitesAdminState, "load", ()),
]
EVERY_CALL = USER_CALLS + ADMIN_CALLS
# Pages that anyone may see: signed out, they show the landing page or the sign-in form.
PUBLIC = {(OverviewState, "load"), (AuthPageState, "load")}
# Handlers that only change what the tab shows (a dialog open, a filter field); they read
# and write no account data, so they need no session. All are plain, synchronous methods.
UI_ONLY = {
    "setvar",
    "dismiss_new_key",
    "ask_revoke",
    "cancel_revoke",
    "set_detail_open",
    "set_key",
    "set_model",
    "set_status",
    "set_since",
    "set_until",
    "set_form_open",
    "set_grant_open",
    "set_limit_open",
    "set_draft",
    "set_edit_open",
    "set_invite_open",
    "set_codes_open",
    "dismiss_invite",  # these two empty a panel of the page (the link and codes are never in state)
    "dismiss_codes",
}  # the model form's price preview: computed from what was typed, nothing stored
ADMIN_STATES = {
    ModelsAdminState,
    UsersAdminState,
    MarginAdminState,
    UsageAdminState,
    UserAdminState,
    InvitesAdminState,
}


def page_states() -> set[type[SessionState]]:
    return set(SessionState.get_substates())


def held(state: SessionState) -> dict:
    """Everything a page state keeps for its tab, its backend vars included, and who it shows."""
    cls = type(state)
    own = {name: getattr(state, name) for name, f in cls.__fields__.items() if f._owner is cls}
    return {**own, "who": (state.signed_in, state.email, state.is_admin)}


def test_every_handler_is_in_these_tables():
    every = {(cls, name) for cls in page_states() for name in cls.event_handlers}
    ui_only = {(cls, name) for cls, name in every if name in UI_ONLY}
    assert every - ui_only == {(cls, name) for cls, name, _ in EVERY_CALL}
    for cls, name in ui_only:  # reading the store takes an await: these cannot
        assert not inspect.iscoroutinefunction(cls.event_handlers[name].fn), (cls, name)
    for cls, name in every - ui_only:  # the guard's `viewer` comes from the cookie, never from the event
        assert "viewer" not in cls.event_handlers[name].get_parameters(), (cls, name)


def test_the_guard_takes_only_async_handlers_that_take_the_viewer():
    """A mistake shows when the page module is imported, not at a user's first event."""

    async def no_viewer(self, key_id: int): ...

    with pytest.raises(TypeError):
        viewer_required(lambda self, viewer: None)
    with pytest.raises(TypeError):
        admin_required(no_viewer)


def test_every_admin_handler_is_in_the_plain_user_test():
    """`test_states.ADMIN_CALLS` drives `test_a_plain_user_calling_an_admin_handler_is_refused…`;
    the admin pages' `load` is `test_a_plain_user_on_an_admin_page_gets_no_admin_data`."""
    assert {cls for cls in page_states() if "Admin" in cls.__name__} == ADMIN_STATES
    admin_handlers = {
        (cls, name) for cls in ADMIN_STATES for name in cls.event_handlers if name not in UI_ONLY and name != "load"
    }
    assert {(cls, name) for cls, name, _ in ADMIN_CALLS} == admin_handlers


def with_data(engine, person) -> dict:
    """A key, 60 log rows and 30 ledger entries of `person`; the ids the calls refer to."""
    make_key(engine, person, name="mine")
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(person.id, i, status=200 if i % 2 else 502) for i in range(60)])
        for i in range(30):
            credits.grant(s, user_id=person.id, amount=1_500_000, note=f"gift {i}")
        ids = {"key": keys.list_keys(s, user_id=person.id)[0].id, "log": usage.logs_page(s, user_id=person.id)[0].id}
    return {**ids, "invite": make_invite(engine)[0]}


def resolve(arg, ids: dict, user_id: int):
    if isinstance(arg, dict):
        return {k: resolve(v, ids, user_id) for k, v in arg.items()}
    return {id(KEY): ids["key"], id(LOG): ids["log"], id(USER): user_id, id(INVITE): ids["invite"]}.get(id(arg), arg)


@pytest.mark.parametrize(
    "state_cls, handler, args", EVERY_CALL, ids=[f"{c.__name__}.{h}-{i}" for i, (c, h, _) in enumerate(EVERY_CALL)]
)
async def test_an_expired_session_is_refused_by_every_handler_and_changes_nothing(
    state_cls, handler, args, admin, user, engine
):
    """An admin's tab, working a moment ago; the session expires; the next event gets nothing."""
    ids = with_data(engine, admin)
    state = state_for(state_cls, cookie=cookie_for(engine, admin), path="/somewhere")
    loaded = await state.load()
    assert (state.signed_in, state.is_admin) == (True, True)
    assert redirect_target(loaded) in (None, "/")  # (a signed-in visitor of /login is sent home)
    expire_sessions(engine, admin)
    before = snapshot(engine)
    result = await getattr(state, handler)(*[resolve(a, ids, user.id) for a in args])
    stranger = state_for(state_cls, path="/somewhere")
    if (state_cls, handler) in PUBLIC:
        assert result is None  # the signed-out page
        await getattr(stranger, handler)()  # what it shows anyone (the sign-up form, say)
    else:
        assert redirect_target(result) == "/login?next=%2Fsomewhere"
    assert snapshot(engine) == before
    assert held(state) == held(stranger)  # the tab holds nothing of the account any more


# ---------------------------------------------------------------- the Account page


@pytest.mark.parametrize(
    "query, error, notice",
    [
        ("", "", ""),
        ("?changed=1", "", CHANGED),
        ("?error=current", "The current password is wrong.", ""),
        ("?error=same", "The new password must differ from the current one.", ""),
        ("?error=password_short", "The password must be at least 8 characters.", ""),
        ("?error=limited&wait=1", "Too many attempts. Try again in 1 minute.", ""),
        ("?error=limited&wait=99999", "Too many attempts. Wait a few minutes, then try again.", ""),
        ("?error=<script>", "", ""),
    ],
)
async def test_account_page_shows_the_outcome_of_the_form(query, error, notice, user, engine):
    state = state_for(AccountState, cookie=cookie_for(engine, user), path=f"/settings/account{query}")
    assert await state.load() is None
    assert (state.email, state.error, state.notice) == (user.email, error, notice)


async def test_account_page_signed_out_sends_you_to_sign_in_and_back(dash_settings):
    state = state_for(AccountState, cookie="", path="/settings/account?changed=1")
    assert redirect_target(await state.load()) == "/login?next=%2Fsettings%2Faccount"
    assert state.notice == "" and not state.signed_in

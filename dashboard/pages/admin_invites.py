"""Admin → Users: single-use sign-up invites and redemption codes (store.invites, store.codes).

An invite link and a batch of codes are shown once, as the store returns them: each goes
to the page in the event's answer, as a script that writes it into its panel, and never
into Reflex state (so never into `.states/` or Redis, nor a later hydrate). The lists show
what is kept of them: their worth, their times, who used them.
"""

from __future__ import annotations

import json
from datetime import timedelta

import reflex as rx
from sqlmodel import Session

from store import codes, invites
from store.errors import InvalidInput, StoreError
from store.models import User
from store.money import format_credits, parse_credits

from .. import backend
from ..auth import Viewer
from ..components.forms import dialog_actions, error_callout, field, sentence
from ..components.tables import data_table, numeric, wrapping
from ..state import SessionState, admin_required, viewer_required
from ..views import CodeRow, InviteRow, code_row, credits_text, fmt_time, invite_row

INVITE_LINK_ID = "invite-link"
NEW_CODES_ID = "new-codes"
DEFAULT_INVITE_DAYS = 7


def _emails(session: Session, user_ids: set[int]) -> dict[int, str]:
    found = {uid: session.get(User, uid) for uid in user_ids if uid}
    return {uid: user.email for uid, user in found.items() if user is not None}


def _lists(session: Session) -> tuple[list[InviteRow], list[CodeRow]]:
    issued = invites.list_invites(session)
    made = codes.list_codes(session)
    emails = _emails(
        session,
        {i.used_by_user_id or 0 for i in issued} | {c.redeemed_by_user_id or 0 for c in made},
    )
    return [invite_row(i, emails) for i in issued], [code_row(c, emails) for c in made]


def _create_invite(session: Session, *, admin_id: int, credits_: int, days: int) -> tuple[str, str]:
    """(the link, or its path when PUBLIC_BASE_URL is unset; when it ends)."""
    issued = invites.create_invite(
        session,
        secret_key=backend.settings().secret_key,
        credits_=credits_,
        ttl=timedelta(days=days),
        created_by_user_id=admin_id,
    )
    return invites.invite_link(backend.settings().public_base_url or "", issued.token), fmt_time(
        issued.invite.expires_at
    )


def _create_codes(session: Session, *, admin_id: int, count: int, credits_: int, days: int | None) -> list[str]:
    return codes.create_codes(
        session,
        secret_key=backend.settings().secret_key,
        count=count,
        credits_=credits_,
        ttl=None if days is None else timedelta(days=days),
        created_by_user_id=admin_id,
    )


def _withdraw(session: Session, *, invite_id: int) -> None:
    invites.withdraw_invite(session, invite_id=invite_id)


def whole_number(text: str, what: str, low: int, high: int) -> int:
    text = (text or "").strip().replace(",", "")
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or not low <= int(text) <= high:
        raise InvalidInput(f"{what} must be a whole number from {low:,} to {high:,}")
    return int(text)


def reveal_script(element_id: str, text: str) -> str:
    """Page script: put `text` into the panel `element_id` (a link given as a path gets this
    page's origin: the address the admin reaches the site by)."""
    return f"""(() => {{
  const text = {json.dumps(text)};
  const shown = document.getElementById({json.dumps(element_id)});
  if (shown) shown.textContent = text.startsWith("/") ? window.location.origin + text : text;
}})()"""


def clear_script(element_id: str) -> str:
    return f"document.getElementById({json.dumps(element_id)}).textContent = ''"


def copy_script(element_id: str) -> str:
    return f"navigator.clipboard.writeText(document.getElementById({json.dumps(element_id)}).textContent)"


class InvitesAdminState(SessionState):
    invites: list[InviteRow] = []
    codes: list[CodeRow] = []
    invite_open: bool = False
    invite_error: str = ""
    invite_summary: str = ""  # what the link just shown does; empty: no link shown
    codes_open: bool = False
    codes_error: str = ""
    codes_summary: str = ""  # what the codes just shown are worth; empty: none shown

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        if viewer.is_admin:  # a plain user sees the notice; nothing of the lists loads
            self.invites, self.codes = await backend.run(_lists)

    @rx.event
    def set_invite_open(self, value: bool):
        self.invite_open, self.invite_error = value, ""

    @rx.event
    def set_codes_open(self, value: bool):
        self.codes_open, self.codes_error = value, ""

    @rx.event
    @admin_required
    async def create_invite(self, viewer: Viewer, form_data: dict):
        """A single-use sign-up link worth `credits` (on top of SIGNUP_CREDITS), for `days`."""
        try:
            text = str(form_data.get("credits", "") or "").strip()
            amount = parse_credits(text, what="credits") if text else 0
            days = whole_number(str(form_data.get("days", "") or ""), "the lifetime in days", 1, 365)
            link, ends = await backend.run(_create_invite, admin_id=viewer.id, credits_=amount, days=days)
        except StoreError as exc:
            self.invite_error = sentence(str(exc))
            return
        worth = f"with {credits_text(format_credits(amount))} " if amount else ""
        self.invite_summary = f"It signs up one account {worth}until {ends} UTC."
        self.invite_open, self.invite_error = False, ""
        self.invites, self.codes = await backend.run(_lists)
        return rx.call_script(reveal_script(INVITE_LINK_ID, link))

    @rx.event
    def dismiss_invite(self):
        self.invite_summary = ""
        return rx.call_script(clear_script(INVITE_LINK_ID))

    @rx.event
    @admin_required
    async def withdraw_invite(self, viewer: Viewer, invite_id: int):
        try:
            await backend.run(_withdraw, invite_id=int(invite_id))
        except StoreError as exc:
            return rx.toast.error(sentence(str(exc)))
        self.invites, self.codes = await backend.run(_lists)
        return rx.toast.success("Invite withdrawn: its link no longer works")

    @rx.event
    @admin_required
    async def create_codes(self, viewer: Viewer, form_data: dict):
        """`count` single-use codes worth `credits` each, valid for `days` (empty: for ever)."""
        try:
            count = whole_number(str(form_data.get("count", "") or ""), "the number of codes", 1, codes.MAX_CODES)
            amount = parse_credits(str(form_data.get("credits", "") or "").strip() or "0", what="credits")
            days_text = str(form_data.get("days", "") or "").strip()
            days = whole_number(days_text, "the lifetime in days", 1, 3650) if days_text else None
            made = await backend.run(_create_codes, admin_id=viewer.id, count=count, credits_=amount, days=days)
        except StoreError as exc:
            self.codes_error = sentence(str(exc))
            return
        each = credits_text(format_credits(amount))
        until = f", valid for {days} days" if days else ", valid until used"
        self.codes_summary = f"{len(made)} code{'s' if len(made) != 1 else ''} of {each} each{until}."
        self.codes_open, self.codes_error = False, ""
        self.invites, self.codes = await backend.run(_lists)
        return rx.call_script(reveal_script(NEW_CODES_ID, "\n".join(made)))

    @rx.event
    def dismiss_codes(self):
        self.codes_summary = ""
        return rx.call_script(clear_script(NEW_CODES_ID))


# ---------------------------------------------------------------- components


def issue_buttons() -> rx.Component:
    s = InvitesAdminState
    return rx.flex(
        rx.button(rx.icon("mail_plus", size=16), "Invite…", variant="soft", on_click=s.set_invite_open(True)),
        rx.button(rx.icon("ticket", size=16), "Codes…", variant="soft", on_click=s.set_codes_open(True)),
        spacing="2",
        wrap="wrap",
    )


def _shown_once(summary: rx.Var, element_id: str, what: str, on_dismiss, *, block: bool) -> rx.Component:
    # Always mounted (hidden while there is nothing to show): the text is the page
    # script's, and React must not drop it by remounting the panel.
    text = (
        rx.el.pre(id=element_id, class_name="break-anywhere", style={"margin": 0, "white_space": "pre-wrap"})
        if block
        else rx.code(size="2", id=element_id, class_name="break-anywhere", max_width="100%")
    )
    return rx.box(
        rx.callout.root(
            rx.callout.icon(rx.icon("triangle_alert")),
            rx.vstack(
                rx.text(
                    rx.text.strong(f"Copy {what} now."),
                    " ",
                    summary,
                    " It is shown only this once: the platform keeps only a hash.",
                ),
                rx.flex(
                    text,
                    rx.button(
                        rx.icon("copy", size=16),
                        "Copy",
                        size="2",
                        on_click=[rx.call_script(copy_script(element_id)), rx.toast.success("Copied")],
                    ),
                    spacing="3",
                    align="center",
                    wrap="wrap",
                    min_width="0",
                    max_width="100%",
                ),
                rx.button("Done", size="1", variant="soft", on_click=on_dismiss),
                spacing="2",
                min_width="0",
                class_name="break-anywhere-words",
            ),
            color_scheme="amber",
            role="alert",
            width="100%",
        ),
        display=rx.cond(summary != "", "block", "none"),
        width="100%",
    )


def shown_once_panels() -> rx.Component:
    s = InvitesAdminState
    return rx.fragment(
        _shown_once(s.invite_summary, INVITE_LINK_ID, "this invite link", s.dismiss_invite, block=False),
        _shown_once(s.codes_summary, NEW_CODES_ID, "these codes", s.dismiss_codes, block=True),
    )


def _invite_dialog() -> rx.Component:
    s = InvitesAdminState
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Invite someone"),
            rx.dialog.description(
                "A link that signs up one account, whatever the sign-up policy (SIGNUP_POLICY) allows "
                "otherwise. It is shown once.",
                size="2",
            ),
            rx.form(
                rx.vstack(
                    field(
                        "Credits",
                        "invite-credits",
                        rx.input(id="invite-credits", name="credits", input_mode="decimal", placeholder="0"),
                        hint="Added to the new account, on top of the sign-up credits. Empty: none.",
                    ),
                    field(
                        "Valid for (days)",
                        "invite-days",
                        rx.input(
                            id="invite-days",
                            name="days",
                            input_mode="numeric",
                            required=True,
                            default_value=str(DEFAULT_INVITE_DAYS),
                        ),
                        hint="1 to 365.",
                    ),
                    error_callout(s.invite_error),
                    dialog_actions("Create link"),
                    spacing="3",
                    margin_top="1em",
                ),
                on_submit=s.create_invite,
                reset_on_submit=False,
            ),
            max_width="28rem",
        ),
        open=s.invite_open,
        on_open_change=s.set_invite_open,
    )


def _codes_dialog() -> rx.Component:
    s = InvitesAdminState
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Redemption codes"),
            rx.dialog.description(
                "Codes a user redeems on their Credits page, each once. They are shown once.", size="2"
            ),
            rx.form(
                rx.vstack(
                    field(
                        "How many",
                        "codes-count",
                        rx.input(
                            id="codes-count", name="count", input_mode="numeric", required=True, default_value="1"
                        ),
                        hint=f"1 to {codes.MAX_CODES:,}.",
                    ),
                    field(
                        "Credits each",
                        "codes-credits",
                        rx.input(id="codes-credits", name="credits", input_mode="decimal", required=True),
                        hint="Up to 6 decimal places.",
                    ),
                    field(
                        "Valid for (days)",
                        "codes-days",
                        rx.input(id="codes-days", name="days", input_mode="numeric", placeholder="until used"),
                        hint="1 to 3,650. Empty: until used.",
                    ),
                    error_callout(s.codes_error),
                    dialog_actions("Create codes"),
                    spacing="3",
                    margin_top="1em",
                ),
                on_submit=s.create_codes,
                reset_on_submit=False,
            ),
            max_width="28rem",
        ),
        open=s.codes_open,
        on_open_change=s.set_codes_open,
    )


def _status(status: rx.Var) -> rx.Component:
    return rx.badge(
        status,
        variant="soft",
        color_scheme=rx.match(status, ("open", "green"), ("unused", "green"), ("used", "blue"), "gray"),
    )


def _invite(i: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(i.created, white_space="nowrap"),
        rx.table.cell(i.expires, white_space="nowrap"),
        numeric(i.credits),
        rx.table.cell(_status(i.status)),
        wrapping(i.used_by),
        rx.table.cell(
            rx.cond(
                i.status == "open",
                rx.button(
                    "Withdraw",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=InvitesAdminState.withdraw_invite(i.id),
                ),
            )
        ),
    )


def _code(c: rx.Var) -> rx.Component:
    return rx.table.row(
        numeric(c.id),
        rx.table.cell(c.created, white_space="nowrap"),
        numeric(c.credits),
        rx.table.cell(c.expires, white_space="nowrap"),
        rx.table.cell(_status(c.status)),
        wrapping(c.used),
    )


def invites_and_codes() -> rx.Component:
    s = InvitesAdminState
    return rx.vstack(
        rx.heading("Invites", size="4", as_="h2"),
        rx.cond(
            s.invites.length() > 0,
            data_table(
                [
                    "Created (UTC)",
                    "Ends (UTC)",
                    ("Credits", {"text_align": "right"}),
                    "Status",
                    "Used by",
                    "",
                ],
                s.invites,
                _invite,
                id="invites",
            ),
            rx.text("No invites yet. Invite… makes a sign-up link.", size="2", color_scheme="gray"),
        ),
        rx.heading("Redemption codes", size="4", as_="h2"),
        rx.cond(
            s.codes.length() > 0,
            data_table(
                [
                    ("#", {"text_align": "right"}),
                    "Created (UTC)",
                    ("Credits", {"text_align": "right"}),
                    "Expires (UTC)",
                    "Status",
                    "Used",
                ],
                s.codes,
                _code,
                id="codes",
            ),
            rx.text("No codes yet. Codes… makes some.", size="2", color_scheme="gray"),
        ),
        _invite_dialog(),
        _codes_dialog(),
        spacing="3",
        width="100%",
    )

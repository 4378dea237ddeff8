"""A tab's stored state goes only to a connection signed in as the person it belongs to.

Reflex keeps each tab's state under a token the page holds (in sessionStorage) and sends
it to any connection that presents that token, cookie or not: on a hydrate, in full.
`TabOwnerGuard` runs before every event, hydrate included, once the state is loaded and
before anything of it is sent. When the tab's state belongs to a signed-in person
(`SessionState._user_id`) and this connection's session cookie is missing, ended or
someone else's, everything the tab held is reset first, so the event, and the hydrate's
snapshot, see only defaults. The person themself loses nothing but a cache: each page
loads its data afresh.
"""

from __future__ import annotations

from reflex.middleware import Middleware
from reflex.state import BaseState

from .auth import viewer_from_cookie
from .state import SessionState


def _page_states(cls: type[BaseState]) -> list[type[BaseState]]:
    found = []
    for sub in cls.get_substates():
        found += [sub, *_page_states(sub)]
    return found


async def forget_tab(root: BaseState) -> None:
    """Reset every state under SessionState, the ones not loaded for this event included
    (a state manager such as Redis loads only the ones an event needs)."""
    base = await root.get_state(SessionState)
    for cls in _page_states(SessionState):
        await root.get_state(cls)
    base.reset()
    base._user_id = 0


class TabOwnerGuard(Middleware):
    """See the module docstring."""

    async def preprocess(self, app, state: BaseState, event):
        root = state._get_root_state()
        owner = (await root.get_state(SessionState))._user_id
        if not owner:
            return None  # nothing of anyone's in it: the sign-in and landing pages need no cookie
        viewer = await viewer_from_cookie(root.router.headers.cookie)
        if viewer is None or viewer.id != owner:
            await forget_tab(root)
        return None

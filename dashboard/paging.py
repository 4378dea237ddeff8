"""Newer / Older paging by keyset, shared by the Credits, Images and Logs states.

A page is fetched with the id of the last row of the page before it (`before_id`); the
ids of the pages walked so far are kept so that "Newer" can go back. A state that mixes
this in lists its rows in the var named by `_rows_var` and loads one page in
`_load_page(user_id, before_id)`.
"""

from __future__ import annotations

import reflex as rx

from .auth import Viewer
from .state import viewer_required


class KeysetPaging(rx.State, mixin=True):
    has_next: bool = False
    page: int = 1
    _cursors: list = []  # before_id of each page after the first
    _rows_var: str = ""

    async def _load_page(self, user_id: int, before_id) -> None:
        raise NotImplementedError

    async def _fetch(self, user_id: int) -> None:
        await self._load_page(user_id, self._cursors[-1] if self._cursors else None)
        self.page = len(self._cursors) + 1

    @rx.event
    @viewer_required
    async def next_page(self, viewer: Viewer):
        rows = getattr(self, self._rows_var)
        if self.has_next and rows:
            self._cursors = [*self._cursors, rows[-1].id]
            await self._fetch(viewer.id)

    @rx.event
    @viewer_required
    async def previous_page(self, viewer: Viewer):
        if self._cursors:
            self._cursors = self._cursors[:-1]
            await self._fetch(viewer.id)

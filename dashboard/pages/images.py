"""Images: the user's image tasks, newest first, with status and thumbnails (signed, expiring URLs)."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store import tasks

from .. import backend, routes
from ..auth import Viewer
from ..components.layout import page_shell
from ..paging import KeysetPaging
from ..state import SessionState, viewer_required
from ..views import TaskRow, task_row

PAGE_SIZE = 20


def _page(session: Session, *, user_id: int, before_id: str | None) -> tuple[list[TaskRow], bool]:
    settings = backend.settings()
    found = tasks.list_tasks_for_user(session, user_id=user_id, limit=PAGE_SIZE + 1, before_id=before_id)
    rows = [
        task_row(t, tasks.output_urls(t, secret_key=settings.secret_key, ttl_s=settings.media_url_ttl_s))
        for t in found[:PAGE_SIZE]
    ]
    return rows, len(found) > PAGE_SIZE


class ImagesState(KeysetPaging, SessionState):
    tasks: list[TaskRow] = []
    _rows_var: str = "tasks"

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        await self._fetch(viewer.id)

    async def _load_page(self, user_id: int, before_id: str | None) -> None:
        self.tasks, self.has_next = await backend.run(_page, user_id=user_id, before_id=before_id)

    @rx.event
    @viewer_required
    async def refresh(self, viewer: Viewer):
        await self._fetch(viewer.id)


def _status(status: rx.Var) -> rx.Component:
    return rx.badge(
        status,
        variant="soft",
        color_scheme=rx.match(status, ("succeeded", "green"), ("failed", "red"), ("running", "blue"), "gray"),
    )


def _thumb(url: rx.Var) -> rx.Component:
    return rx.link(
        rx.image(
            src=url,
            alt="Generated image",
            width="96px",
            height="96px",
            object_fit="cover",
            border_radius="var(--radius-2)",
            loading="lazy",
        ),
        href=url,
        is_external=True,
    )


def _task(t: rx.Var) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.cond(
                t.images.length() > 0,
                rx.hstack(rx.foreach(t.images, _thumb), spacing="2", wrap="wrap"),
                rx.center(
                    rx.icon(rx.cond(t.status == "failed", "image_off", "hourglass"), color="var(--gray-9)"),
                    width="96px",
                    height="96px",
                    background="var(--gray-a3)",
                    border_radius="var(--radius-2)",
                ),
            ),
            rx.vstack(
                rx.hstack(
                    _status(t.status),
                    rx.text(t.model, weight="medium", size="2"),
                    rx.text(t.time + " UTC", size="1", color_scheme="gray"),
                    align="center",
                    wrap="wrap",
                ),
                rx.text(t.prompt, size="2", style={"overflow_wrap": "anywhere"}),
                rx.text(
                    t.size,
                    " · ",
                    t.credits,
                    " credits · ",
                    rx.code(t.id, variant="ghost", size="1"),
                    size="1",
                    color_scheme="gray",
                ),
                rx.cond(t.error != "", rx.text(t.error, size="1", color_scheme="red")),
                spacing="1",
                min_width="0",
            ),
            spacing="4",
            align="start",
        ),
        width="100%",
    )


def images_page() -> rx.Component:
    return page_shell(
        "Images",
        rx.cond(
            ImagesState.tasks.length() > 0,
            rx.vstack(rx.foreach(ImagesState.tasks, _task), spacing="3", width="100%"),
            rx.callout(
                rx.text("No image tasks yet. Generate one with ", rx.code("POST /api/v1/images/generations"), "."),
                icon="info",
            ),
        ),
        rx.hstack(
            rx.button("Newer", on_click=ImagesState.previous_page, disabled=ImagesState.page <= 1, variant="soft"),
            rx.text("Page ", ImagesState.page, size="2"),
            rx.button("Older", on_click=ImagesState.next_page, disabled=~ImagesState.has_next, variant="soft"),
            align="center",
        ),
        actions=rx.button(rx.icon("refresh_cw", size=16), "Refresh", variant="soft", on_click=ImagesState.refresh),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(images_page, route=routes.IMAGES, title="Images", on_load=ImagesState.load)

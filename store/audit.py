"""Registry edits with their audit rows: who changed which model, when, before and after."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from . import registry
from .models import ModelAudit, ModelEntry

# Not a change anyone made: every save moves it.
_IGNORED = {"updated_at"}


def _changed(before: dict | None, after: dict) -> bool:
    if before is None:
        return True
    return any(before.get(k) != v for k, v in after.items() if k not in _IGNORED)


def edit_model(
    session: Session, *, actor: str, actor_user_id: int | None, model_id: str, **fields: Any
) -> ModelEntry:
    """Create or edit a registry entry (see `registry.set_model`) and record who did it.

    The audit row is written in the same transaction as the entry: it is added from a
    `before_commit` hook, so the commit inside `set_model` writes both or neither.
    A save that changes nothing records nothing.
    """
    model_id = registry.validate_model_id(model_id)
    existing = session.get(ModelEntry, model_id)
    before = existing.model_dump(mode="json") if existing is not None else None

    def add_audit_row(sess: Session) -> None:
        entry = sess.get(ModelEntry, model_id)
        after = entry.model_dump(mode="json")
        if _changed(before, after):
            sess.add(ModelAudit(model_id=model_id, actor_user_id=actor_user_id, actor=actor[:254],
                                before=before, after=after))

    sa.event.listen(session, "before_commit", add_audit_row)
    try:
        entry, _ = registry.set_model(session, model_id=model_id, **fields)
    finally:
        sa.event.remove(session, "before_commit", add_audit_row)
    return entry


def changed_fields(row: ModelAudit) -> dict[str, tuple[Any, Any]]:
    """{field: (before, after)} for what the change touched (before is None for a new model)."""
    before = row.before or {}
    return {k: (before.get(k), v) for k, v in row.after.items()
            if k not in _IGNORED and (row.before is None or before.get(k) != v)}


def recent_changes(session: Session, *, limit: int = 20, model_id: str | None = None) -> list[ModelAudit]:
    query = select(ModelAudit)
    if model_id is not None:
        query = query.where(ModelAudit.model_id == model_id)
    return list(session.exec(query.order_by(ModelAudit.id.desc()).limit(limit)))

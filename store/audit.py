"""The registry audit rows (written by `registry.set_model`): who changed which model, when, before and after."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from . import registry
from .models import ModelAudit


def changed_fields(row: ModelAudit) -> dict[str, tuple[Any, Any]]:
    """{field: (before, after)} for what the change touched (before is None for a new model)."""
    before = row.before or {}
    return {
        k: (before.get(k), v)
        for k, v in row.after.items()
        if k not in registry.UNAUDITED and (row.before is None or before.get(k) != v)
    }


def recent_changes(session: Session, *, limit: int = 20, model_id: str | None = None) -> list[ModelAudit]:
    query = select(ModelAudit)
    if model_id is not None:
        query = query.where(col(ModelAudit.model_id) == model_id)
    return list(session.exec(query.order_by(col(ModelAudit.id).desc()).limit(limit)))

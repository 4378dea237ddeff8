"""What the pages display: plain rows made from store objects, with times as UTC text.

State vars hold these (never table objects, which carry hashes and would be sent to
the browser whole).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from store.models import ApiKey, ImageTask, LedgerEntry, ModelAudit, ModelEntry, RequestLog, User


def fmt_time(value: datetime | None, *, seconds: bool = False) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def signed(amount: int) -> str:
    return f"+{amount}" if amount > 0 else str(amount)


@dataclasses.dataclass
class LogRow:
    id: int = 0
    time: str = ""
    request_id: str = ""
    key: str = ""
    endpoint: str = ""
    model: str = ""
    status: int = 0
    ok: bool = True
    error_code: str = ""
    latency_ms: int = 0
    credits: int = 0
    stream: bool = False
    prompt_tokens: str = ""
    completion_tokens: str = ""
    total_tokens: str = ""
    upstream_id: str = ""
    task_id: str = ""


def log_row(row: RequestLog, key_names: dict[int, str]) -> LogRow:
    name = key_names.get(row.api_key_id) if row.api_key_id is not None else None
    prefix = f"{row.key_prefix}…" if row.key_prefix else ""
    key = f"{name} · {prefix}" if name else prefix or "—"

    def num(value: int | None) -> str:
        return "" if value is None else str(value)

    return LogRow(
        id=row.id, time=fmt_time(row.created_at, seconds=True), request_id=row.request_id, key=key,
        endpoint=f"{row.method} {row.endpoint.removeprefix('/api/v1')}", model=row.model or "—", status=row.status,
        ok=row.status < 400, error_code=row.error_code or "", latency_ms=row.latency_ms,
        credits=row.credit_cost, stream=row.stream, prompt_tokens=num(row.prompt_tokens),
        completion_tokens=num(row.completion_tokens), total_tokens=num(row.total_tokens),
        upstream_id=row.upstream_id or "", task_id=row.task_id or "",
    )


@dataclasses.dataclass
class KeyRow:
    id: int = 0
    name: str = ""
    display: str = ""  # prefix…last4
    created: str = ""
    last_used: str = ""
    rate_limit: str = ""
    status: str = ""  # active | disabled | revoked


def key_row(key: ApiKey) -> KeyRow:
    status = "revoked" if key.revoked_at is not None else "active" if key.enabled else "disabled"
    return KeyRow(
        id=key.id, name=key.name, display=f"{key.prefix}…{key.last4}", created=fmt_time(key.created_at),
        last_used=fmt_time(key.last_used_at) or "never",
        rate_limit="unlimited" if key.rate_limit_per_minute == 0 else f"{key.rate_limit_per_minute}/min",
        status=status,
    )


@dataclasses.dataclass
class LedgerRow:
    id: int = 0
    time: str = ""
    kind: str = ""
    amount: str = ""
    positive: bool = True
    balance_after: int = 0
    detail: str = ""


def ledger_row(entry: LedgerEntry) -> LedgerRow:
    if entry.kind == "grant":
        detail = entry.note or ("credits added" if entry.amount > 0 else "credits removed")
    else:
        detail = " · ".join(part for part in (entry.model, entry.note, entry.ref) if part)
    return LedgerRow(id=entry.id, time=fmt_time(entry.created_at, seconds=True), kind=entry.kind,
                     amount=signed(entry.amount), positive=entry.amount > 0,
                     balance_after=entry.balance_after, detail=detail)


@dataclasses.dataclass
class TaskRow:
    id: str = ""
    time: str = ""
    model: str = ""
    prompt: str = ""
    size: str = ""
    status: str = ""
    error: str = ""
    credits: int = 0
    images: list[str] = dataclasses.field(default_factory=list)


def task_row(task: ImageTask, urls: list[str]) -> TaskRow:
    return TaskRow(id=task.id, time=fmt_time(task.created_at), model=task.model, prompt=task.prompt,
                   size=task.size or "", status=task.status, error=task.error or "",
                   credits=task.credit_cost, images=urls)


@dataclasses.dataclass
class ModelRow:
    id: str = ""
    display_name: str = ""
    category: str = ""
    capabilities: str = ""  # comma-separated, as the form edits them
    credit_cost: int = 0
    enabled: bool = True
    provider: str = ""
    upstream_id: str = ""
    updated: str = ""


def model_row(entry: ModelEntry) -> ModelRow:
    return ModelRow(id=entry.id, display_name=entry.display_name, category=entry.category,
                    capabilities=", ".join(entry.capabilities), credit_cost=entry.credit_cost,
                    enabled=entry.enabled, provider=entry.provider, upstream_id=entry.upstream_id,
                    updated=fmt_time(entry.updated_at))


@dataclasses.dataclass
class AuditRow:
    id: int = 0
    time: str = ""
    actor: str = ""
    model_id: str = ""
    change: str = ""


def audit_row(row: ModelAudit, changes: dict[str, tuple]) -> AuditRow:
    if row.before is None:
        change = "added"
    else:
        change = "; ".join(f"{name}: {_short(old)} → {_short(new)}" for name, (old, new) in changes.items())
    return AuditRow(id=row.id, time=fmt_time(row.created_at, seconds=True), actor=row.actor,
                    model_id=row.model_id, change=change or "no change")


def _short(value) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


@dataclasses.dataclass
class UserRow:
    id: int = 0
    email: str = ""
    balance: int = 0
    is_admin: bool = False
    api_enabled: bool = True
    created: str = ""


def user_row(user: User) -> UserRow:
    return UserRow(id=user.id, email=user.email, balance=user.balance, is_admin=user.is_admin,
                   api_enabled=user.api_enabled, created=fmt_time(user.created_at))

"""What the pages display: plain rows made from store objects, with times as UTC text and
money as exact decimal text (`2.5`, `0.046`: store.money.format_credits, never a float).

State vars hold these (never table objects, which carry hashes and would be sent to
the browser whole).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from store import budgets, keys, pricing
from store.admin_usage import UsageRow
from store.margin import MarginRow, usd_text
from store.models import (
    Alert,
    ApiKey,
    ImageTask,
    Invite,
    ModelAudit,
    ModelEntry,
    Payment,
    RedemptionCode,
    RequestLog,
    User,
    utcnow,
)
from store.money import format_credits
from store.usage import LedgerLine

from .error_codes import meaning


def fmt_time(value: datetime | None, *, seconds: bool = False) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def signed(micro: int) -> str:
    """Micro-credits as a signed decimal: `+2.5`, `-0.046`, `0`."""
    return f"+{format_credits(micro)}" if micro > 0 else format_credits(micro)


def tokens(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def credits_text(amount: str) -> str:
    """`1 credit`, `2.5 credits`."""
    return f"{amount} credit" if amount == "1" else f"{amount} credits"


def token_summary(prompt: int | None, completion: int | None, total: int | None) -> str:
    """`12 prompt / 3 completion / 15 total`; a dash when the usage is not known."""
    if prompt is None and completion is None and total is None:
        return "—"
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    parts = [(prompt, "prompt"), (completion, "completion"), (total, "total")]
    return " / ".join(f"{'—' if n is None else f'{n:,}'} {what}" for n, what in parts)


@dataclasses.dataclass
class LogRow:
    id: int = 0
    time: str = ""
    day: str = ""  # the time's two halves, for a narrow column
    clock: str = ""
    request_id: str = ""
    key: str = ""
    endpoint: str = ""
    model: str = ""
    status: int = 0
    ok: bool = True
    error_code: str = ""
    error_text: str = ""  # what the code means (error_codes.MEANINGS)
    latency_ms: int = 0
    credits: str = "0"  # the request's final charge
    stream: bool = False
    prompt_tokens: str = ""
    completion_tokens: str = ""
    total_tokens: str = ""
    token_line: str = ""  # the table's "1,000 / 500", or a dash
    token_detail: str = ""  # "1,000 prompt / 500 completion / 1,500 total", or a dash
    upstream_id: str = ""
    task_id: str = ""


def log_row(row: RequestLog, key_names: dict[int, str]) -> LogRow:
    name = key_names.get(row.api_key_id) if row.api_key_id is not None else None
    prefix = f"{row.key_prefix}…" if row.key_prefix else ""
    key = f"{name} · {prefix}" if name else prefix or "—"

    time = fmt_time(row.created_at, seconds=True)
    return LogRow(
        id=row.id,
        time=time,
        day=time[:10],
        clock=time[11:],
        request_id=row.request_id,
        key=key,
        endpoint=f"{row.method} {row.endpoint.removeprefix('/api/v1')}",
        model=row.model or "—",
        status=row.status,
        ok=row.status < 400,
        error_code=row.error_code or "",
        error_text=meaning(row.error_code or ""),
        latency_ms=row.latency_ms,
        credits=format_credits(row.credit_cost),
        stream=row.stream,
        prompt_tokens=tokens(row.prompt_tokens),
        completion_tokens=tokens(row.completion_tokens),
        total_tokens=tokens(row.total_tokens),
        token_line="—"
        if row.prompt_tokens is None and row.completion_tokens is None
        else f"{tokens(row.prompt_tokens) or '—'} / {tokens(row.completion_tokens) or '—'}",
        token_detail=token_summary(row.prompt_tokens, row.completion_tokens, row.total_tokens),
        upstream_id=row.upstream_id or "",
        task_id=row.task_id or "",
    )


@dataclasses.dataclass
class KeyRow:
    id: int = 0
    name: str = ""
    display: str = ""  # prefix…last4
    created: str = ""
    last_used: str = ""
    rate_limit: str = ""
    status: str = ""  # active | disabled | expired | revoked
    enabled: bool = True
    budget: str = "—"  # "2.5 / 10 per month · resets 2026-02-01", or a dash
    models: str = "any"  # the allow-list, or "any"
    expires: str = "never"
    # The Edit form's values, as it takes them (empty: none).
    rpm_value: str = ""
    budget_value: str = ""
    period_value: str = "none"  # none | day | week | month
    models_value: str = ""
    expires_value: str = ""  # YYYY-MM-DDTHH:MM, UTC (a datetime-local input's format)


EXPIRY_INPUT = "%Y-%m-%dT%H:%M"


def budget_text(status: budgets.BudgetStatus | None) -> str:
    """`2.5 / 10 per month · resets 2026-02-01`, `0 / 5 in total`, or a dash (no budget)."""
    if status is None:
        return "—"
    spent = f"{format_credits(status.spent)} / {format_credits(status.budget)}"
    if status.period is None or status.resets_at is None:
        return f"{spent} in total"
    resets = fmt_time(status.resets_at)
    return f"{spent} per {status.period} · resets {resets.removesuffix(' 00:00')}"


def key_row(key: ApiKey, now: datetime | None = None) -> KeyRow:
    now = now or utcnow()
    expired = key.expires_at is not None and budgets.aware(key.expires_at) <= now
    if key.revoked_at is not None:
        status = "revoked"
    elif expired:
        status = "expired"
    else:
        status = "active" if key.enabled else "disabled"
    models = keys.models_of(key)
    budget = keys.budget_of(key, now)
    return KeyRow(
        id=key.id,
        name=key.name,
        display=f"{key.prefix}…{key.last4}",
        created=fmt_time(key.created_at),
        last_used=fmt_time(key.last_used_at) or "never",
        rate_limit="unlimited" if key.rate_limit_per_minute == 0 else f"{key.rate_limit_per_minute}/min",
        status=status,
        enabled=key.enabled,
        budget=budget_text(budget),
        models="any" if models is None else ", ".join(models),
        expires=fmt_time(key.expires_at) or "never",
        rpm_value=str(key.rate_limit_per_minute),
        budget_value="" if key.budget is None else format_credits(key.budget),
        period_value=key.budget_period or "none",
        models_value="" if models is None else ", ".join(models),
        expires_value=""
        if key.expires_at is None
        else budgets.aware(key.expires_at).astimezone(UTC).strftime(EXPIRY_INPUT),
    )


@dataclasses.dataclass
class LedgerRow:
    """One line of the Credits page (store.usage.LedgerLine), as a person reads it."""

    id: int = 0
    time: str = ""
    day: str = ""  # the time's two halves, for a narrow column
    clock: str = ""
    kind: str = ""  # grant | request | refunded | refund (one of an older ledger's own)
    amount: str = ""  # signed decimal: what the line moved
    positive: bool = True
    detail: str = ""  # "Chat openai/gpt-5 · held 0.21, charged 0.010044"
    ref: str = ""


_WHAT = {"chat": "Chat", "image": "Image", "embedding": "Embeddings"}


def ledger_row(line: LedgerLine) -> LedgerRow:
    if line.kind == "request":
        what = " ".join(filter(None, (_WHAT.get(line.category or "", "Request"), line.model)))
        charged = format_credits(-line.amount)
        if line.refunded:
            money = f"held {format_credits(line.held)}, refunded" + (f" ({line.note})" if line.note else "")
        elif line.settled:
            money = f"held {format_credits(line.held)}, charged {charged}"
        elif line.settling:
            money = f"held {format_credits(line.held)}, settling once the usage is known"
        else:
            money = f"charged {charged}"
        detail = f"{what} · {money}"
    elif line.kind == "refund":
        detail = " · ".join(filter(None, ("Refund", line.model, line.note)))
    elif line.kind == "grant":
        detail = line.note or ("credits added" if line.amount > 0 else "credits removed")
    else:
        detail = " · ".join(filter(None, (line.model, line.note)))
    time = fmt_time(line.created_at, seconds=True)
    return LedgerRow(
        id=line.id,
        time=time,
        day=time[:10],
        clock=time[11:],
        kind="refunded" if line.refunded else line.kind,
        amount=signed(line.amount),
        positive=line.amount > 0,
        detail=detail,
        ref=line.ref or "",
    )


@dataclasses.dataclass
class TaskRow:
    id: str = ""
    time: str = ""
    model: str = ""
    prompt: str = ""
    size: str = ""
    status: str = ""
    error: str = ""
    credits: str = "0"
    images: list[str] = dataclasses.field(default_factory=list)


def task_row(task: ImageTask, urls: list[str]) -> TaskRow:
    return TaskRow(
        id=task.id,
        time=fmt_time(task.created_at),
        model=task.model,
        prompt=task.prompt,
        size=task.size or "",
        status=task.status,
        error=task.error or "",
        credits=format_credits(task.credit_cost),
        images=urls,
    )


@dataclasses.dataclass
class ModelRow:
    """A registry entry with its prices as decimal text, as the form edits them."""

    id: str = ""
    display_name: str = ""
    category: str = ""
    capabilities: str = ""  # comma-separated, as the form edits them
    pricing: str = pricing.PER_REQUEST
    credit_cost: str = "0"  # the per-request fee
    prompt_price: str = "0"  # per 1M tokens
    completion_price: str = "0"
    markup: str = "1"
    max_output_tokens: str = "16384"
    context_length: str = str(ModelEntry.model_fields["context_length"].default)  # tokens, as the form edits it
    max_prompt_tokens: str = ""  # a flat price's prompt bound; empty: any
    cache_read_price: str = ""  # per 1M cached prompt tokens; empty: the prompt price
    cache_write_price: str = ""
    context: str = ""  # the context length for the table: `400,000`
    price: str = ""  # the prices in one phrase, for the table
    typical: str = ""  # what a typical call costs (store.pricing.typical_cost)
    enabled: bool = True
    provider: str = ""
    upstream_id: str = ""
    updated: str = ""


def price_summary(entry: ModelEntry) -> str:
    """`3 per request`, `3 per request, prompts up to 8,000 tokens`, `0.5 + 1.25 in / 10 out per 1M`,
    `1.25 in / 10 out, cached 0.125 read / 1.25 write per 1M`, `upstream cost × 1.2 (ref. … per 1M)`."""
    if entry.pricing == pricing.PER_REQUEST:
        bound = "" if entry.max_prompt_tokens is None else f", prompts up to {entry.max_prompt_tokens:,} tokens"
        return f"{format_credits(entry.credit_cost)} per request{bound}"
    fee = f"{format_credits(entry.credit_cost)} + " if entry.credit_cost else ""
    per_1m = f"{format_credits(entry.prompt_price)} in / {format_credits(entry.completion_price)} out"
    if entry.cache_read_price is not None or entry.cache_write_price is not None:
        read = _or_prompt(entry.cache_read_price, entry)
        write = _or_prompt(entry.cache_write_price, entry)
        per_1m += f", cached {format_credits(read)} read / {format_credits(write)} write"
    per_1m += " per 1M"
    if entry.pricing == pricing.PER_TOKEN:
        return fee + per_1m
    return f"{fee}upstream cost × {format_credits(entry.markup)} (ref. {per_1m})"


def _or_prompt(price: int | None, entry: ModelEntry) -> int:
    """A cache price as charged: unset, it is the prompt price."""
    return entry.prompt_price if price is None else price


def _optional_credits(value: int | None) -> str:
    return "" if value is None else format_credits(value)


def model_row(entry: ModelEntry) -> ModelRow:
    return ModelRow(
        id=entry.id,
        display_name=entry.display_name,
        category=entry.category,
        capabilities=", ".join(entry.capabilities),
        pricing=entry.pricing,
        credit_cost=format_credits(entry.credit_cost),
        prompt_price=format_credits(entry.prompt_price),
        completion_price=format_credits(entry.completion_price),
        markup=format_credits(entry.markup),
        max_output_tokens=str(entry.max_output_tokens),
        context_length=str(entry.context_length),
        max_prompt_tokens="" if entry.max_prompt_tokens is None else str(entry.max_prompt_tokens),
        cache_read_price=_optional_credits(entry.cache_read_price),
        cache_write_price=_optional_credits(entry.cache_write_price),
        context=f"{entry.context_length:,}",
        price=price_summary(entry),
        typical=format_credits(pricing.typical_cost(entry)),
        enabled=entry.enabled,
        provider=entry.provider,
        upstream_id=entry.upstream_id,
        updated=fmt_time(entry.updated_at),
    )


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
        change = "; ".join(
            f"{field_words(name)}: {_short(old, name)} → {_short(new, name)}" for name, (old, new) in changes.items()
        )
    return AuditRow(
        id=row.id,
        time=fmt_time(row.created_at, seconds=True),
        actor=row.actor,
        model_id=row.model_id,
        change=change or "no change",
    )


def field_words(name: str) -> str:
    """A field's name as a person writes it: `credit_cost` -> `credit cost`."""
    return name.replace("_", " ")


# Audited entries hold money as micro-credits (markup in millionths): shown as decimals.
_DECIMAL_FIELDS = frozenset(
    {"credit_cost", "prompt_price", "completion_price", "markup", "cache_read_price", "cache_write_price"}
)
# What an unset (null) field means, in the audit's words.
_UNSET = {"cache_read_price": "prompt price", "cache_write_price": "prompt price", "max_prompt_tokens": "any"}


def _short(value, name: str = "") -> str:
    if value is None and name in _UNSET:
        return _UNSET[name]
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if name in _DECIMAL_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return format_credits(value)
    return str(value)


@dataclasses.dataclass
class UserRow:
    id: int = 0
    email: str = ""
    balance: str = "0"
    is_admin: bool = False
    api_enabled: bool = True
    created: str = ""
    you: bool = False  # the admin looking at the list
    max_key_rpm: str = ""  # their own ceiling as the form edits it; empty: the platform's
    key_limit: str = ""  # the ceiling that applies: `600/min (default)`, `100/min`, `any`


def key_limit_text(user: User, default_ceiling: int) -> str:
    """The most a rate limit `user` may give their own keys, in words."""
    ceiling = keys.rpm_ceiling(user, default_ceiling)
    words = f"{ceiling:,}/min" if ceiling else "any"
    return f"{words} (default)" if user.max_key_rpm is None else words


def user_row(user: User, viewer_id: int = 0, *, default_ceiling: int) -> UserRow:
    """`default_ceiling`: the platform's MAX_KEY_RPM (Settings.max_key_rpm)."""
    return UserRow(
        id=user.id,
        email=user.email,
        balance=format_credits(user.balance),
        is_admin=user.is_admin,
        api_enabled=user.api_enabled,
        created=fmt_time(user.created_at),
        you=user.id == viewer_id,
        max_key_rpm="" if user.max_key_rpm is None else str(user.max_key_rpm),
        key_limit=key_limit_text(user, default_ceiling),
    )


@dataclasses.dataclass
class MarginLine:
    """One model on one UTC day of the Margin page (store.margin.MarginRow)."""

    day: str = ""
    model: str = ""
    requests: str = ""
    prompt_tokens: str = ""
    completion_tokens: str = ""
    charged: str = ""  # credits
    upstream_usd: str = ""  # USD, to the micro-dollar
    margin: str = ""  # credits
    negative: bool = False
    unpriced: int = 0  # requests the upstream reported no cost for


def margin_line(row: MarginRow) -> MarginLine:
    return MarginLine(
        day=row.day.isoformat(),
        model=row.model,
        requests=f"{row.requests:,}",
        prompt_tokens=tokens(row.prompt_tokens),
        completion_tokens=tokens(row.completion_tokens),
        charged=format_credits(row.charged),
        upstream_usd=usd_text(row.upstream_usd),
        margin=signed(row.margin),
        negative=row.margin < 0,
        unpriced=row.unpriced,
    )


@dataclasses.dataclass
class UsageLine:
    """One user, key or model of the admin's Usage page (store.admin_usage.UsageRow)."""

    label: str = ""
    short: str = ""  # the label cut for a chart's axis
    ref: int = 0  # the user's id (0 for a key or a model)
    requests: str = "0"
    errors: str = "0"
    error_rate: str = ""  # "12.5 %"
    spend: str = "0"
    latency: str = ""  # "420 ms"


def percent(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.1f} %" if whole else "—"


def usage_line(row: UsageRow) -> UsageLine:
    return UsageLine(
        label=row.label,
        short=row.label if len(row.label) <= 22 else row.label[:21] + "…",
        ref=row.ref or 0,
        requests=f"{row.requests:,}",
        errors=f"{row.errors:,}",
        error_rate=percent(row.errors, row.requests),
        spend=format_credits(row.spend),
        latency=f"{row.mean_latency_ms:,} ms" if row.requests else "—",
    )


@dataclasses.dataclass
class InviteRow:
    """A sign-up invite (store.invites) as the admin's Users page lists it."""

    id: int = 0
    created: str = ""
    expires: str = ""
    credits: str = "0"
    status: str = ""  # open | used | ended (expired or withdrawn)
    used_by: str = ""  # the email that signed up with it


def invite_row(invite: Invite, emails: dict[int, str], now: datetime | None = None) -> InviteRow:
    if invite.used_at is not None:
        status = "used"
    elif budgets.aware(invite.expires_at) <= (now or utcnow()):
        status = "ended"
    else:
        status = "open"
    return InviteRow(
        id=invite.id or 0,
        created=fmt_time(invite.created_at),
        expires=fmt_time(invite.expires_at),
        credits=format_credits(invite.credits),
        status=status,
        used_by=emails.get(invite.used_by_user_id or 0, ""),
    )


@dataclasses.dataclass
class CodeRow:
    """A redemption code (store.codes): the code itself is not kept, only what it is worth."""

    id: int = 0
    created: str = ""
    credits: str = "0"
    expires: str = "never"
    status: str = ""  # unused | used | expired
    used: str = ""  # "2026-01-02 10:00 by ann@example.com"


def code_row(code: RedemptionCode, emails: dict[int, str], now: datetime | None = None) -> CodeRow:
    if code.redeemed_at is not None:
        status = "used"
        who = emails.get(code.redeemed_by_user_id or 0, "")
        used = fmt_time(code.redeemed_at) + (f" by {who}" if who else "")
    else:
        expired = code.expires_at is not None and budgets.aware(code.expires_at) <= (now or utcnow())
        status, used = ("expired" if expired else "unused"), ""
    return CodeRow(
        id=code.id or 0,
        created=fmt_time(code.created_at),
        credits=format_credits(code.credits),
        expires=fmt_time(code.expires_at) or "never",
        status=status,
        used=used,
    )


@dataclasses.dataclass
class AlertRow:
    """An operator alert (store.alerts) as the admin's Usage page lists it."""

    id: int = 0
    time: str = ""
    kind: str = ""
    summary: str = ""
    status: str = ""  # pending | delivered | failed


def alert_summary(kind: str, p: dict) -> str:
    """What an alert says, in a line."""
    if kind == "low_balance":
        return f"{p.get('email')}: balance {p.get('balance')}, below their threshold of {p.get('threshold')}"
    if kind == "key_budget":
        period = f" this {p['period']}" if p.get("period") else ""
        return (
            f"{p.get('email')}: key “{p.get('key_name')}” ({p.get('key_prefix')}…) reached {p.get('percent')} % "
            f"of its budget{period} ({p.get('spent')} / {p.get('budget')})"
        )
    if kind == "upstream_errors":
        return f"{p.get('errors')} provider errors within {p.get('window_s')} s ({p.get('process')})"
    if kind == "payment_shortfall":
        return (
            f"{p.get('email')}: a Stripe {p.get('event')} of {p.get('payment_intent')} took back "
            f"{p.get('taken_back')}; {p.get('shortfall')} credits could not be (spent)"
        )
    return ", ".join(f"{k}: {v}" for k, v in p.items())


def alert_row(alert: Alert) -> AlertRow:
    return AlertRow(
        id=alert.id or 0,
        time=fmt_time(alert.created_at, seconds=True),
        kind=alert.kind.replace("_", " "),
        summary=alert_summary(alert.kind, alert.payload or {}),
        status=alert.status,
    )


@dataclasses.dataclass
class PaymentRow:
    """A Stripe Checkout of the user's (store.payments)."""

    id: int = 0
    time: str = ""
    credits: str = "0"
    price: str = ""  # "5.00 USD"
    status: str = ""  # pending | paid | refunded
    note: str = ""  # what was taken back


def payment_row(payment: Payment) -> PaymentRow:
    status = {"open": "pending", "paid": "paid", "reversed": "refunded"}.get(payment.status, payment.status)
    note = ""
    if payment.credits_reversed:
        note = f"{format_credits(payment.credits_reversed)} credits taken back"
        if payment.status == "paid":
            status = "partly refunded"
    return PaymentRow(
        id=payment.id or 0,
        time=fmt_time(payment.created_at),
        credits=format_credits(payment.credits),
        price=f"{payment.amount // 100}.{payment.amount % 100:02d} {payment.currency.upper()}",
        status=status,
        note=note,
    )

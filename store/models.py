"""The SQLModel tables. Every table lives here so Alembic sees one metadata."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

# A value that sets a field back to unset (None), where None itself means "not given".
CLEAR = object()


def utcnow() -> datetime:
    return datetime.now(UTC)


def table_of(model: type[SQLModel]) -> sa.Table:
    """A table model's Core table, typed. (SQLModel sets `Model.__table__` when the class
    is created but does not declare it, so `Model.__table__` does not type-check.)"""
    table = sa.inspect(model).local_table
    assert isinstance(table, sa.Table)
    return table


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint("balance >= 0", name="ck_users_balance_nonnegative"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(max_length=100)
    is_admin: bool = False
    api_enabled: bool = True
    balance: int = Field(default=0, sa_type=sa.BigInteger)  # micro-credits (store.money)
    # The most a rate limit this user may give their own keys (0: any, unlimited included;
    # None: the platform's MAX_KEY_RPM). Admins set it; the CLI's own keys are not bound by it.
    max_key_rpm: int | None = None
    # Alerts (store.alerts): the balance below which the user sees a banner and the operator
    # is told (micro-credits; None: no alert), and whether that crossing was reported (set
    # at the crossing, cleared by a top-up that lifts the balance back over the threshold).
    low_balance_threshold: int | None = Field(default=None, sa_type=sa.BigInteger)
    low_balance_alerted: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    name: str = Field(max_length=100)
    # HMAC-SHA256(SECRET_KEY, full key), hex. The key itself is never stored.
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=12, index=True)
    last4: str = Field(max_length=4)
    rate_limit_per_minute: int = 60
    enabled: bool = True
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    # Key controls (store.keys, enforced by the debit in store.credits): a budget in
    # micro-credits (None: none) per period ("day" | "week" | "month"; None: the key's whole
    # life), what the key has spent in the period that began at `budget_period_start`
    # (every hold counts at once; settlements and refunds give back what they return), the
    # highest budget alert sent in that period (0, 80, 100: percent), and the models the
    # key may call (a JSON list of registry ids; None: all).
    budget: int | None = Field(default=None, sa_type=sa.BigInteger)
    budget_period: str | None = Field(default=None, max_length=10)
    budget_spent: int = Field(default=0, sa_type=sa.BigInteger)
    budget_period_start: datetime | None = None
    budget_alert_level: int = 0
    allowed_models: str | None = Field(default=None, sa_type=sa.Text)


class ModelEntry(SQLModel, table=True):
    """One entry of the model registry: a public model id and how to serve it."""

    __tablename__ = "models"

    id: str = Field(primary_key=True, max_length=200)
    display_name: str = Field(max_length=200)
    category: str = Field(max_length=20)  # "chat" | "image" | "embedding"
    capabilities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Metering (store.pricing): the mode, the per-request fee and per-1M-token prices in
    # micro-credits, the markup in millionths (1_000_000 = x1), the cap on max_tokens.
    pricing: str = Field(default="per_request", max_length=20)
    credit_cost: int = Field(default=0, sa_type=sa.BigInteger)
    prompt_price: int = Field(default=0, sa_type=sa.BigInteger)
    completion_price: int = Field(default=0, sa_type=sa.BigInteger)
    markup: int = Field(default=1_000_000, sa_type=sa.BigInteger)
    max_output_tokens: int = 16_384
    # Bounds (store.pricing): the prompt the model accepts at most, in tokens, which bounds
    # what the platform cannot measure (remote images and files, audio, PDFs); and, for a
    # flat (per_request) price, the largest prompt bound that price covers (None: any).
    context_length: int = 128_000
    max_prompt_tokens: int | None = None
    # Cached prompt tokens (per_token and upstream_cost's reference prices), micro-credits
    # per 1M; None: the prompt price.
    cache_read_price: int | None = Field(default=None, sa_type=sa.BigInteger)
    cache_write_price: int | None = Field(default=None, sa_type=sa.BigInteger)
    # An image model's price of one image at a resolution tier above 1K (`credit_cost`):
    # {"2K": micro-credits, "4K": …}; a tier without one is priced by its pixels (store.pricing).
    resolution_prices: dict[str, int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    enabled: bool = True
    provider: str = Field(max_length=50)
    upstream_id: str = Field(max_length=200)
    owned_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LedgerEntry(SQLModel, table=True):
    """One change of a user's balance. The balance always equals the sum of these."""

    __tablename__ = "credit_ledger"
    # A request or task is charged at most once and refunded at most once.
    __table_args__ = (sa.UniqueConstraint("kind", "ref", name="uq_credit_ledger_kind_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    amount: int = Field(sa_type=sa.BigInteger)  # micro-credits
    balance_after: int = Field(sa_type=sa.BigInteger)
    kind: str = Field(max_length=20)  # "grant" | "charge" (the hold) | "settle" | "refund"
    ref: str | None = Field(default=None, max_length=64)  # request id or task id
    model: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=500)
    actor_user_id: int | None = None
    # A charge made through an API key: which key, and the budget period it counted in
    # (so that its settlement or refund gives back to that key's spend only in that period).
    api_key_id: int | None = None
    key_period_start: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class RequestLog(SQLModel, table=True):
    """One row per `/api/v1` request, rejected ones included."""

    __tablename__ = "request_logs"
    __table_args__ = (
        sa.Index("ix_request_logs_user_id_id", "user_id", "id"),
        sa.Index("ix_request_logs_created_at", "created_at"),
        # The dashboard's Logs page (migration 0003): newest first, per user, by model or key.
        sa.Index("ix_request_logs_user_created", "user_id", "created_at", "id"),
        sa.Index("ix_request_logs_user_model_created", "user_id", "model", "created_at", "id"),
        sa.Index("ix_request_logs_user_key_created", "user_id", "api_key_id", "created_at", "id"),
        sa.Index("ix_request_logs_user_status_created", "user_id", "status", "created_at", "id"),  # 0004
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=64, unique=True)
    user_id: int | None = None
    api_key_id: int | None = None
    key_prefix: str | None = Field(default=None, max_length=12)
    method: str = Field(max_length=10)
    endpoint: str = Field(max_length=200)
    model: str | None = Field(default=None, max_length=200)
    status: int
    error_code: str | None = Field(default=None, max_length=50)
    latency_ms: int
    credit_cost: int = Field(default=0, sa_type=sa.BigInteger)  # micro-credits charged in the end
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    upstream_id: str | None = Field(default=None, max_length=200)
    upstream_cost: int | None = Field(default=None, sa_type=sa.BigInteger)  # the upstream's USD cost, micro-USD
    task_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class PendingSettlement(SQLModel, table=True):
    """A metered request whose usage never arrived (the client left mid-stream, or the
    upstream sent none): the reconciler settles it from the upstream's generation record,
    else from `estimate` once `deadline_at` passes. Deleted in the transaction that settles."""

    __tablename__ = "pending_settlements"
    __table_args__ = (sa.Index("ix_pending_settlements_due", "next_at"),)

    ref: str = Field(primary_key=True, max_length=64)  # the request id (the ledger's ref)
    user_id: int
    model: str = Field(max_length=200)
    upstream_id: str | None = Field(default=None, max_length=200)
    estimate: int = Field(sa_type=sa.BigInteger)  # micro-credits, from what was relayed
    # A call cut off by its process's death (store.holds): nothing is known of what it
    # delivered, so past the deadline without a generation record it is refunded.
    interrupted: bool = False
    attempts: int = 0
    next_at: datetime = Field(default_factory=utcnow)
    deadline_at: datetime
    created_at: datetime = Field(default_factory=utcnow)


class Hold(SQLModel, table=True):
    """A model call's hold while it is open: written in the transaction that debits it and
    deleted in the one that settles, refunds or hands it to the reconciler (or, for a flat
    price, with its log row). `lease_until` is renewed by the process serving the call; a
    hold whose lease ran out belongs to a process that died, and the reconciler settles it
    from the upstream's generation record (`upstream_id`, noted while it ran) or refunds it."""

    __tablename__ = "holds"
    __table_args__ = (sa.Index("ix_holds_lease", "lease_until"),)

    ref: str = Field(primary_key=True, max_length=64)  # the request id (the ledger's ref)
    user_id: int
    api_key_id: int | None = None
    key_prefix: str | None = Field(default=None, max_length=12)
    model: str = Field(max_length=200)
    endpoint: str = Field(max_length=200)
    stream: bool = False
    amount: int = Field(sa_type=sa.BigInteger)  # micro-credits held
    owner: str = Field(max_length=32)  # the serving process's instance id
    upstream_id: str | None = Field(default=None, max_length=200)
    lease_until: datetime
    created_at: datetime = Field(default_factory=utcnow)


class UserSession(SQLModel, table=True):
    """A dashboard sign-in. Only the token's HMAC is stored; the cookie holds the token."""

    __tablename__ = "user_sessions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    last_seen_at: datetime = Field(default_factory=utcnow)


class ModelAudit(SQLModel, table=True):
    """Who changed a registry entry, when, and what it was before and after."""

    __tablename__ = "model_audit"

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(max_length=200, index=True)
    actor_user_id: int | None = None
    actor: str = Field(max_length=254)  # email, or "cli"
    before: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class ImageTask(SQLModel, table=True):
    """One image generation, from submission through the pipeline to stored files."""

    __tablename__ = "image_tasks"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_image_tasks_user_idempotency"),
        sa.Index("ix_image_tasks_due", "status", "next_poll_at"),
        sa.Index("ix_image_tasks_user_id_created", "user_id", "created_at"),
        sa.Index("ix_image_tasks_webhook_due", "webhook_status", "webhook_next_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id")
    api_key_id: int | None = None
    request_id: str | None = Field(default=None, max_length=64)
    model: str = Field(max_length=200)
    provider: str = Field(max_length=50)
    upstream_id: str = Field(max_length=200)
    prompt: str = Field(sa_column=Column(sa.Text, nullable=False))
    size: str | None = Field(default=None, max_length=20)
    n: int = 1
    credit_cost: int = Field(default=0, sa_type=sa.BigInteger)  # micro-credits
    status: str = Field(default="pending", max_length=20)  # pending|running|succeeded|failed
    provider_task_id: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, max_length=500)
    outputs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    idempotency_key: str | None = Field(default=None, max_length=200)
    webhook_url: str | None = Field(default=None, max_length=2000)
    webhook_status: str | None = Field(default=None, max_length=20)  # pending|delivered|failed
    webhook_attempts: int = 0
    webhook_next_at: datetime | None = None
    attempts: int = 0
    next_poll_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    deadline_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class Invite(SQLModel, table=True):
    """A single-use sign-up link (SIGNUP_POLICY=invite). Only the token's HMAC is stored."""

    __tablename__ = "invites"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    credits: int = Field(default=0, sa_type=sa.BigInteger)  # micro-credits granted with the account
    created_by_user_id: int | None = None  # the admin; None: the CLI
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    used_by_user_id: int | None = None


class RedemptionCode(SQLModel, table=True):
    """A single-use code worth `credits`, redeemed on the Credits page. Stored as its HMAC."""

    __tablename__ = "redemption_codes"

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    credits: int = Field(sa_type=sa.BigInteger)  # micro-credits
    created_by_user_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    redeemed_at: datetime | None = None
    redeemed_by_user_id: int | None = None


class Payment(SQLModel, table=True):
    """One Stripe Checkout Session the platform created, and what became of it.

    `open` until its signed `checkout.session.completed` webhook credits it (`paid`, once:
    the status changes in the transaction that writes the ledger row); refunds and disputes
    take credits back in proportion to the money (store.payments)."""

    __tablename__ = "payments"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(max_length=255, unique=True)
    payment_intent: str | None = Field(default=None, max_length=255, index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    pack_id: str = Field(max_length=40)
    credits: int = Field(sa_type=sa.BigInteger)  # micro-credits the pack grants
    amount: int  # the price in the currency's smallest unit (cents)
    currency: str = Field(max_length=3)
    status: str = Field(default="open", max_length=20)  # open | paid | reversed (all taken back)
    # What Stripe reported taken back, in cents (refunds, cumulative; disputes), the credits
    # that stand for (taken back so far), and the part of them the balance could not cover.
    amount_refunded: int = 0
    amount_disputed: int = 0
    credits_reversed: int = Field(default=0, sa_type=sa.BigInteger)
    shortfall: int = Field(default=0, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow)
    paid_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class PaymentEvent(SQLModel, table=True):
    """A Stripe event already handled: its id is written with its effect, so a replay is a no-op."""

    __tablename__ = "payment_events"

    event_id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)


class Alert(SQLModel, table=True):
    """An operator alert waiting for (or past) delivery to ALERT_WEBHOOK_URL (api.worker)."""

    __tablename__ = "alerts"
    __table_args__ = (sa.Index("ix_alerts_due", "status", "next_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=30)  # low_balance | key_budget | upstream_errors | payment_shortfall
    payload: dict = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=20)  # pending | delivered | failed
    attempts: int = 0
    next_at: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None

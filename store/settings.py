"""One settings class for the whole platform, read from the environment or `.env`."""

from __future__ import annotations

import functools
import os
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .packs import CreditPack, parse_packs

DATA_DIR = Path("data")
NATIVE_FORMATS = ("messages", "responses")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = f"sqlite:///{DATA_DIR}/platform.db"
    redis_url: str | None = None
    secret_key: str = ""
    port: int = Field(3000, ge=1, le=65535)
    openrouter_api_key: str | None = None
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    # The formats the chat provider serves natively besides chat completions (comma-separated:
    # `messages`, `responses`); a request in one of them is forwarded as it is, not translated.
    # Unset: OpenRouter's own (`messages,responses`) for an openrouter.ai base URL, none for
    # any other OpenAI-compatible base.
    openrouter_formats: str | None = None
    replicate_api_token: str | None = None
    replicate_base_url: str = "https://api.replicate.com/v1"
    upstream_timeout_s: float = Field(120.0, gt=0)
    default_rate_limit_per_minute: int = Field(60, ge=0)
    signup_credits: Decimal = Field(Decimal(0), ge=0, le=10**9, decimal_places=6)  # credits, decimals allowed
    media_dir: Path = DATA_DIR / "media"
    # 20 MiB: room for base64 images in chat (api/body.py reads it with the limit, never whole).
    max_body_bytes: int = Field(20_971_520, gt=0)
    admin_email: str | None = None
    admin_password: str | None = None
    # How long a verified key stays cached in one process. Revocation in the same
    # process is immediate; other processes see it within this many seconds.
    key_cache_ttl_s: float = Field(5.0, ge=0)
    # Request-log batching: rows are written at most this often, or when this many wait.
    log_flush_interval_s: float = Field(0.2, gt=0)
    log_batch_size: int = Field(500, gt=0)
    # Rows that may wait for the writer (the database away); beyond it rows are counted, not kept.
    log_queue_max: int = Field(100_000, gt=0)
    # Request logs older than this are purged in the background (0 keeps them forever).
    log_retention_days: int = Field(90, ge=0)
    # GET /metrics (Prometheus) answers only with `Authorization: Bearer <METRICS_TOKEN>`;
    # unset, the endpoint does not exist (404). See api/metrics.py.
    metrics_token: str | None = None
    # One JSON line per /api/v1 request on stderr (logger `platform.access`).
    access_log: bool = True
    # Upstream 429/5xx and connection failures are retried this many times, with
    # backoff, but only while nothing has been sent to the client.
    upstream_retries: int = Field(1, ge=0, le=5)
    # The chat hop's aiohttp connector (api/providers/upstream_http.py): connections in use
    # at once (more wait for one), how long an idle one is kept, and a CA file to trust
    # (an upstream with a self-signed certificate); proxies come from HTTPS_PROXY/NO_PROXY.
    upstream_max_connections: int = Field(1000, gt=0)
    upstream_keepalive_s: float = Field(30.0, gt=0)
    upstream_ca_file: str | None = None
    # Prefix of the rate-limit counters in Redis (two deployments may share one Redis).
    rate_limit_namespace: str = "platform-rl"
    db_pool_size: int = Field(10, gt=0)
    db_max_overflow: int = Field(20, ge=0)
    # SQLite: a write that cannot have the lock this long answers 503 Retry-After.
    sqlite_busy_timeout_s: float = Field(5.0, ge=0)
    # Image task pipeline (see docs/images.md).
    run_pipeline_in_process: bool = True  # false when `python -m api.worker` runs elsewhere
    task_timeout_s: float = Field(600.0, gt=0)  # a task older than this fails and is refunded
    task_poll_interval_s: float = Field(1.0, gt=0)  # first upstream poll; then backoff x1.5
    task_poll_max_interval_s: float = Field(15.0, gt=0)
    task_lease_s: float = Field(300.0, gt=0)  # a claim another worker may take over after
    worker_idle_s: float = Field(0.5, gt=0)  # how often an idle worker looks for due work
    worker_concurrency: int = Field(8, gt=0)  # tasks one worker runs at once
    media_url_ttl_s: int = Field(3600, gt=0)  # lifetime of a signed media URL
    max_image_bytes: int = Field(32 * 1024 * 1024, gt=0)
    public_base_url: str | None = None  # origin for media URLs in webhooks, e.g. https://host
    webhook_max_attempts: int = Field(6, ge=1)
    webhook_backoff_s: float = Field(2.0, gt=0)  # doubles after each failed delivery
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_allow_private: bool = False  # allow webhooks to loopback/private addresses
    # Metering (store.pricing): credits per US dollar of an upstream's reported cost.
    credits_per_usd: Decimal = Field(Decimal(100), gt=0, le=10**6, decimal_places=6)
    # The reconciler (api.reconciler): how long it asks the upstream for the generation
    # record of a request whose usage never arrived before settling from the estimate,
    # and the first wait between asks (doubling, at most a minute).
    reconcile_deadline_s: float = Field(600.0, gt=0)
    reconcile_backoff_s: float = Field(2.0, gt=0)
    # Bounds (SPEC, "Bounds"): a request body not read within this many seconds is cut (408);
    # model calls one user may have open at once in one process (429 past it); the most a
    # user may set their own keys' rate limit to unless an admin gives them another ceiling
    # (0: no ceiling); how long a hold's record lives without its process renewing it (a
    # process that died mid-call is found by that); rows written per minute for requests
    # without a valid key (the rest are counted in the metrics only).
    body_read_timeout_s: float = Field(30.0, gt=0)
    max_in_flight_per_user: int = Field(32, ge=1)
    max_key_rpm: int = Field(600, ge=0, le=1_000_000)
    hold_lease_s: float = Field(30.0, gt=0)
    unauthenticated_log_rows_per_minute: int = Field(60, ge=0)
    # Reverse proxies whose X-Forwarded-For the sign-in limits believe: IPs or CIDRs,
    # comma-separated. Empty: the socket peer is the client (dashboard/client_address.py).
    trusted_proxies: str = ""
    # Operator controls (SPEC, "Operator controls"). Who may sign up: anyone, holders of an
    # invite (`python -m store invite`), or no one; how long an invite link stays valid.
    signup_policy: Literal["open", "invite", "closed"] = "open"
    invite_ttl_days: int = Field(7, ge=1, le=365)
    # Stripe Checkout (dashboard/billing_routes.py): the secret API key, the webhook
    # endpoint's signing secret, the packs on sale as `credits:price` in CURRENCY
    # (`10:5.00,50:20.00`), and the API's base URL (tests point it at a local fake).
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    stripe_currency: str = Field("usd", pattern=r"^[a-z]{3}$")
    credit_packs: str = ""
    # Operator alerts (store.alerts): where they are POSTed (unset: none are queued), the
    # secret their `X-Platform-Signature` is made with (unset: unsigned), and the spike of
    # provider errors one process reports: this many within the window (0: never).
    alert_webhook_url: str | None = None
    alert_webhook_secret: str | None = None
    alert_error_spike: int = Field(20, ge=0)
    alert_error_window_s: float = Field(60.0, gt=0)

    @field_validator(
        "redis_url",
        "openrouter_api_key",
        "replicate_api_token",
        "admin_email",
        "admin_password",
        "metrics_token",
        "upstream_ca_file",
        "stripe_secret_key",
        "stripe_webhook_secret",
        "stripe_api_base",
        "alert_webhook_url",
        "alert_webhook_secret",
    )
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("openrouter_base_url", "replicate_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("openrouter_formats")
    @classmethod
    def _known_formats(cls, value: str | None) -> str | None:
        if value is None:
            return None
        formats = {part.strip() for part in value.split(",") if part.strip()}
        unknown = formats - set(NATIVE_FORMATS)
        if unknown:
            raise ValueError(
                f"OPENROUTER_FORMATS may name {', '.join(NATIVE_FORMATS)}, not {', '.join(sorted(unknown))}"
            )
        return ",".join(sorted(formats))

    @property
    def native_formats(self) -> frozenset[str]:
        """The formats the chat provider is sent natively (see `openrouter_formats`)."""
        if self.openrouter_formats is None:
            host = urlsplit(self.openrouter_base_url).hostname or ""
            return (
                frozenset(NATIVE_FORMATS) if host == "openrouter.ai" or host.endswith(".openrouter.ai") else frozenset()
            )
        return frozenset(part for part in self.openrouter_formats.split(",") if part)

    @field_validator("credit_packs")
    @classmethod
    def _packs(cls, value: str) -> str:
        parse_packs(value)  # a bad CREDIT_PACKS fails at start, with the reason
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _alert_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("ALERT_WEBHOOK_URL must be an http(s) URL")
        return value

    @property
    def packs(self) -> tuple[CreditPack, ...]:
        return parse_packs(self.credit_packs)

    @property
    def stripe_configured(self) -> bool:
        return bool(self.stripe_secret_key and self.stripe_webhook_secret and self.packs)

    @model_validator(mode="after")
    def _secret(self) -> Settings:
        if not self.secret_key:
            self.secret_key = _stored_secret_key(DATA_DIR / "secret_key")
        if len(self.secret_key) < 16:
            raise ValueError("SECRET_KEY must be at least 16 characters")
        return self


def _stored_secret_key(path: Path) -> str:
    """Return the secret kept in `path`, creating it (once, atomically) if missing."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = secrets.token_urlsafe(48)
    tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    tmp.write_text(candidate)
    tmp.chmod(0o600)
    try:
        # link() fails if another process created the file first; theirs wins.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

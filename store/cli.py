"""The admin CLI, `python -m store COMMAND …`. Bad input: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.exc import OperationalError, ProgrammingError

from . import budgets, codes, credits, invites, keys, pricing, registry, users
from .db import get_engine, session_for
from .errors import StoreError
from .margin import MAX_DAYS, margin_by_model_day, usd_text
from .models import CLEAR
from .money import format_credits, parse_credits
from .settings import Settings, get_settings


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of argparse's usage block
        raise UsageError(message)


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _credits(text: str) -> int:
    """A decimal number of credits (`2.5`), as micro-credits."""
    try:
        return parse_credits(text)
    except StoreError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _markup(text: str) -> int:
    try:
        return parse_credits(text, what="markup")  # millionths, like credits
    except StoreError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _credits_or_none(text: str) -> object:
    """A price in credits, or `none` to unset it (it then follows the prompt price)."""
    return CLEAR if text.strip().lower() == "none" else _credits(text)


def _int_or_none(text: str) -> object:
    return CLEAR if text.strip().lower() == "none" else _int(text)


def _store_parser(parse):
    """An argparse type from a store parser (store.keys.parse_*): its InvalidInput as the error."""

    def convert(text: str):
        try:
            return parse(text)
        except StoreError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _key_controls(p: argparse.ArgumentParser, *, clearable: bool = False) -> None:
    none = "; none: remove it" if clearable else ""
    p.add_argument("--budget", type=_store_parser(keys.parse_budget), help=f"credits the key may spend a period{none}")
    p.add_argument(
        "--budget-period",
        type=_store_parser(keys.parse_period),
        help=f"day, week or month (default: the key's whole life){none}",
    )
    p.add_argument(
        "--models", type=_store_parser(keys.parse_models), help=f"comma-separated model ids it may call{none}"
    )
    p.add_argument(
        "--expires", type=_store_parser(keys.parse_expiry), help=f"ISO date or time it stops working (UTC){none}"
    )


def _controls_of(args: argparse.Namespace) -> dict[str, object]:
    return {
        "budget": args.budget,
        "budget_period": args.budget_period,
        "models": args.models,
        "expires_at": args.expires,
    }


def _key_line(key) -> str:
    """A key as the CLI reports it: prefix…last4, owner's limits and controls."""
    parts = [f"{key.prefix}…{key.last4}", key.name, f"{key.rate_limit_per_minute}/min"]
    budget = keys.budget_of(key)
    if budget is not None:
        per = f" per {budget.period}" if budget.period else ""
        parts.append(f"budget {format_credits(budget.budget)}{per} (spent {format_credits(budget.spent)})")
    models = keys.models_of(key)
    if models is not None:
        parts.append("models " + ",".join(models))
    if key.expires_at is not None:
        parts.append("expires " + budgets.aware(key.expires_at).isoformat())
    return "\t".join(parts)


def _tier_price(text: str) -> object:
    """`4K=20` (credits per image at that tier), or `none`."""
    if text.strip().lower() == "none":
        return CLEAR
    tier, equals, price = text.partition("=")
    if not equals or tier.strip().upper() not in pricing.RESOLUTIONS[1:]:
        raise argparse.ArgumentTypeError(f"{text!r}: give TIER=CREDITS, the tier 2K or 4K")
    return tier.strip().upper(), _credits(price)


def _resolution_prices(given: list | None) -> object:
    if not given:
        return None
    if any(item is CLEAR for item in given):
        return CLEAR
    return dict(given)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m store", description="Administer the platform's store.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("migrate", help="upgrade the database to the newest schema and seed the registry")

    p = sub.add_parser("create-user", help="create a user")
    p.add_argument("email")
    p.add_argument("--password", required=True)
    p.add_argument("--admin", action="store_true")
    p.add_argument("--credits", type=_credits, default=0)

    p = sub.add_parser("grant", help="add (or, negative, remove) credits through the ledger")
    p.add_argument("email")
    p.add_argument("amount", type=_credits)
    p.add_argument("--note")

    p = sub.add_parser("create-key", help="issue an API key; prints it once")
    p.add_argument("email")
    p.add_argument("--name", default="cli")
    p.add_argument("--rpm", type=_int, default=None)
    _key_controls(p)

    p = sub.add_parser("edit-key", help="change the key with this display prefix (first 12 chars)")
    p.add_argument("prefix")
    p.add_argument("--name")
    p.add_argument("--rpm", type=_int)
    _key_controls(p, clearable=True)

    p = sub.add_parser("set-model", help="create or edit a registry entry")
    p.add_argument("model_id")
    p.add_argument("--cost", type=_credits, help="credits per request (the fee in token pricing)")
    p.add_argument("--pricing", choices=pricing.MODES)
    p.add_argument("--prompt-price", type=_credits, help="credits per 1M prompt tokens")
    p.add_argument("--completion-price", type=_credits, help="credits per 1M completion tokens")
    p.add_argument("--markup", type=_markup, help="multiplier of the upstream cost, e.g. 1.2")
    p.add_argument("--max-output-tokens", type=_int)
    p.add_argument("--context-length", type=_int, help="the longest prompt the model takes, in tokens")
    p.add_argument(
        "--max-prompt-tokens",
        type=_int_or_none,
        help="per_request: the largest prompt the flat price covers (none: any)",
    )
    p.add_argument("--cache-read-price", type=_credits_or_none, help="credits per 1M cached prompt tokens read (none)")
    p.add_argument("--cache-write-price", type=_credits_or_none, help="credits per 1M prompt tokens cached (none)")
    p.add_argument(
        "--resolution-price",
        action="append",
        type=_tier_price,
        help="an image model's price per image at a tier above 1K, e.g. 4K=20 (repeat per tier; none: unset all)",
    )
    p.add_argument("--enable", dest="enabled", action="store_const", const=True)
    p.add_argument("--disable", dest="enabled", action="store_const", const=False)
    p.add_argument("--display-name")
    p.add_argument("--category", choices=registry.CATEGORIES)
    p.add_argument("--provider", choices=registry.PROVIDERS)
    p.add_argument("--upstream-id")
    p.add_argument("--capabilities", help="comma-separated, e.g. chat,reasoning")

    sub.add_parser("models", help="list the registry")

    p = sub.add_parser("margin", help="per model and UTC day: requests, tokens, credits charged, upstream USD, margin")
    p.add_argument("--days", type=_int, default=30)

    p = sub.add_parser("set-user", help="change a user's API access, role or key rate-limit ceiling")
    p.add_argument("email")
    p.add_argument(
        "--max-key-rpm",
        type=_int_or_none,
        help="the highest rate limit (per minute) they may give their own keys; 0: any; none: MAX_KEY_RPM",
    )
    p.add_argument("--api-enabled", dest="api_enabled", action="store_const", const=True)
    p.add_argument("--api-disabled", dest="api_enabled", action="store_const", const=False)
    p.add_argument("--admin", dest="is_admin", action="store_const", const=True)
    p.add_argument("--no-admin", dest="is_admin", action="store_const", const=False)
    p.add_argument(
        "--low-balance", type=_credits_or_none, help="alert when the balance falls below this many credits; none: never"
    )

    p = sub.add_parser("revoke-key", help="revoke the key with this display prefix (first 12 chars)")
    p.add_argument("prefix")

    p = sub.add_parser("invite", help="issue a single-use sign-up link; prints it once")
    p.add_argument("--credits", type=_credits, default=0, help="credits granted with the account")
    p.add_argument("--days", type=_int, default=None, help="how long the link works (default INVITE_TTL_DAYS)")

    p = sub.add_parser("codes", help="redemption codes")
    codes_sub = p.add_subparsers(dest="codes_command", required=True, parser_class=_Parser)
    p = codes_sub.add_parser("create", help="issue N single-use codes; prints each once")
    p.add_argument("count", type=_int)
    p.add_argument("--credits", type=_credits, required=True, help="credits each code is worth")
    p.add_argument("--days", type=_int, default=None, help="how long they work (default: for ever)")
    return parser


def run(args: argparse.Namespace, out=sys.stdout) -> None:
    settings = get_settings()
    if args.command == "migrate":
        from .migrate import migrate  # alembic is only needed here

        added = migrate(settings.database_url)
        print(f"database at head; default models added: {', '.join(added) or 'none'}", file=out)
        return
    with session_for(get_engine(settings.database_url)) as session:
        if args.command == "create-user":
            if args.credits < 0:
                raise UsageError("--credits must not be negative")
            user = users.create_user(
                session, email=args.email, password=args.password, is_admin=args.admin, credits_=args.credits
            )
            print(
                f"created {user.email} (id {user.id}, admin={user.is_admin}, balance {format_credits(user.balance)})",
                file=out,
            )
        elif args.command == "grant":
            user = users.get_user_by_email(session, email=args.email)
            assert user.id is not None  # a stored row
            new = credits.grant(session, user_id=user.id, amount=args.amount, note=args.note)
            print(f"{user.email}: balance {format_credits(new)}", file=out)
        elif args.command == "create-key":
            user = users.get_user_by_email(session, email=args.email)
            assert user.id is not None  # a stored row
            rpm = settings.default_rate_limit_per_minute if args.rpm is None else args.rpm
            for option, value in (("--budget", args.budget), ("--models", args.models), ("--expires", args.expires)):
                if value is CLEAR:
                    raise UsageError(f"{option} none: a new key has no such control to remove")
            if args.budget_period is CLEAR:
                args.budget_period = None
            if args.budget_period is not None and args.budget is None:
                raise UsageError("--budget-period needs --budget")
            controls = keys.KeyControls(
                budget=args.budget, budget_period=args.budget_period, models=args.models, expires_at=args.expires
            )
            issued = keys.issue_key(
                session,
                secret_key=settings.secret_key,
                user_id=user.id,
                name=args.name,
                rate_limit_per_minute=rpm,
                controls=controls,
            )
            print(f"key {_key_line(issued.key)} for {user.email}. Shown once:", file=out)
            print(issued.secret, file=out)
        elif args.command == "edit-key":
            changes = _controls_of(args)
            if args.name is None and args.rpm is None and all(v is None for v in changes.values()):
                raise UsageError(
                    "nothing to change: give --name, --rpm, --budget, --budget-period, --models or --expires"
                )
            key = keys.live_key_by_prefix(session, prefix=args.prefix)
            assert key.id is not None  # a stored row
            key = keys.edit_key(
                session,
                key_id=key.id,
                name=args.name,
                rate_limit_per_minute=args.rpm,
                budget=args.budget,
                budget_period=args.budget_period,
                models=args.models,
                expires_at=args.expires,
            )
            print(f"updated {_key_line(key)}", file=out)
        elif args.command == "set-model":
            fields = {
                "credit_cost": args.cost,
                "pricing": args.pricing,
                "prompt_price": args.prompt_price,
                "completion_price": args.completion_price,
                "markup": args.markup,
                "max_output_tokens": args.max_output_tokens,
                "context_length": args.context_length,
                "max_prompt_tokens": args.max_prompt_tokens,
                "cache_read_price": args.cache_read_price,
                "cache_write_price": args.cache_write_price,
                "resolution_prices": _resolution_prices(args.resolution_price),
                "enabled": args.enabled,
                "display_name": args.display_name,
                "category": args.category,
                "provider": args.provider,
                "upstream_id": args.upstream_id,
                "capabilities": [c for c in args.capabilities.split(",")] if args.capabilities is not None else None,
            }
            entry, before = registry.set_model(session, model_id=args.model_id, actor="cli", **fields)
            print(f"{'updated' if before else 'created'} {_model_line(entry)}", file=out)
        elif args.command == "models":
            for entry in registry.list_models(session):
                print(_model_line(entry), file=out)
        elif args.command == "margin":
            if not 1 <= args.days <= MAX_DAYS:
                raise UsageError(f"--days must be from 1 to {MAX_DAYS}")
            print(
                "day\tmodel\trequests\tprompt_tokens\tcompletion_tokens\tcredits_charged\tupstream_usd"
                "\tmargin_credits\tunpriced_requests",
                file=out,
            )
            for row in margin_by_model_day(session, credits_per_usd=settings.credits_per_usd, days=args.days):
                print(
                    f"{row.day}\t{row.model}\t{row.requests}\t{row.prompt_tokens}\t{row.completion_tokens}\t"
                    f"{format_credits(row.charged)}\t{usd_text(row.upstream_usd)}\t{format_credits(row.margin)}\t"
                    f"{row.unpriced}",
                    file=out,
                )
        elif args.command == "set-user":
            flags = (args.api_enabled, args.is_admin, args.max_key_rpm)
            if all(v is None for v in flags) and args.low_balance is None:
                raise UsageError(
                    "nothing to change: give --api-enabled/--api-disabled, --admin/--no-admin, --max-key-rpm"
                    " or --low-balance"
                )
            user = users.get_user_by_email(session, email=args.email)
            assert user.id is not None  # a stored row
            if args.low_balance is not None:
                users.validate_threshold(args.low_balance)  # before any change: bad input changes nothing
            if any(v is not None for v in flags):
                user = users.set_user_flags(
                    session,
                    user_id=user.id,
                    api_enabled=args.api_enabled,
                    is_admin=args.is_admin,
                    max_key_rpm=args.max_key_rpm,
                )
            if args.low_balance is not None:
                assert user.id is not None  # a stored row
                user = users.set_low_balance_threshold(session, user_id=user.id, threshold=args.low_balance)
            ceiling = "default" if user.max_key_rpm is None else user.max_key_rpm
            low = "none" if user.low_balance_threshold is None else format_credits(user.low_balance_threshold)
            print(
                f"{user.email}: api_enabled={user.api_enabled} admin={user.is_admin} max_key_rpm={ceiling}"
                f" low_balance={low}",
                file=out,
            )
        elif args.command == "revoke-key":
            key = keys.revoke_key_by_prefix(session, prefix=args.prefix)
            print(f"revoked {key.prefix}…{key.last4} ({key.name})", file=out)
        elif args.command == "invite":
            if args.credits < 0:
                raise UsageError("--credits must not be negative")
            days = settings.invite_ttl_days if args.days is None else args.days
            if not 1 <= days <= 365:
                raise UsageError("--days must be from 1 to 365")
            invite = invites.create_invite(
                session, secret_key=settings.secret_key, credits_=args.credits, ttl=timedelta(days=days)
            )
            expires = budgets.aware(invite.invite.expires_at).isoformat(timespec="seconds")
            print(f"invite {invite.invite.id}: {format_credits(args.credits)} credits, until {expires}", file=out)
            print(invites.invite_link(public_base(settings), invite.token), file=out)
        elif args.command == "codes":
            if args.days is not None and not 1 <= args.days <= 3650:
                raise UsageError("--days must be from 1 to 3650")
            issued_codes = codes.create_codes(
                session,
                secret_key=settings.secret_key,
                count=args.count,
                credits_=args.credits,
                ttl=timedelta(days=args.days) if args.days else None,
            )
            until = f", for {args.days} days" if args.days else ""
            print(f"{len(issued_codes)} codes of {format_credits(args.credits)} credits{until}. Shown once:", file=out)
            for code in issued_codes:
                print(code, file=out)


def public_base(settings: Settings) -> str:
    """The site's origin for links: PUBLIC_BASE_URL, else http://localhost:PORT."""
    return (settings.public_base_url or f"http://localhost:{settings.port}").rstrip("/")


def _model_line(entry) -> str:
    state = "enabled" if entry.enabled else "disabled"
    price = f"cost={format_credits(entry.credit_cost)}"
    if entry.pricing != pricing.PER_REQUEST:
        price += (
            f"\tprompt={format_credits(entry.prompt_price)}/1M\tcompletion={format_credits(entry.completion_price)}/1M"
            f"\tmarkup={format_credits(entry.markup)}"
        )
    if entry.cache_read_price is not None:
        price += f"\tcache_read={format_credits(entry.cache_read_price)}/1M"
    if entry.cache_write_price is not None:
        price += f"\tcache_write={format_credits(entry.cache_write_price)}/1M"
    if entry.max_prompt_tokens is not None:
        price += f"\tmax_prompt_tokens={entry.max_prompt_tokens}"
    return (
        f"{entry.id}\t{entry.category}\tpricing={entry.pricing}\t{price}\tmax_output_tokens={entry.max_output_tokens}"
        f"\tcontext_length={entry.context_length}\t{state}\t{entry.provider}:{entry.upstream_id}\t{entry.display_name}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        run(args)
    except (UsageError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OperationalError, ProgrammingError) as exc:
        first = str(exc.orig if hasattr(exc, "orig") else exc).splitlines()[0]
        print(f"error: database not ready ({first}); run `python -m store migrate`", file=sys.stderr)
        return 2
    return 0

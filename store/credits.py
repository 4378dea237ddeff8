"""The credit ledger: every change of a balance is one conditional update plus one row.

The balance lives on the user row so that admission is a single atomic statement
(`UPDATE … SET balance = balance - cost WHERE id = … AND balance >= cost`); the ledger
row is written in the same transaction, so the balance always equals the ledger sum.
Amounts are micro-credits (store.money).

One billing path for every model call (SPEC, "Metering"):

    debit_for_request  the hold: the request's upper bound, `charge` row, at admission
    settle             what the usage says it cost (never above the hold): the difference
                       comes back in one `settle` row
    refund             a failed request: everything charged for it comes back, `refund` row

A unique (kind, ref) makes each of the three happen at most once per request.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from . import alerts as store_alerts
from . import budgets, holds
from .db import on_connection, reads
from .errors import (
    InsufficientCredits,
    InvalidInput,
    KeyBudgetExceeded,
    KeyNotUsable,
    ModelNotAllowed,
    NotFound,
    StoreError,
)
from .models import ApiKey, LedgerEntry, User, table_of, utcnow
from .money import MICRO, format_credits
from .pricing import final_charge

GRANT, CHARGE, SETTLE, REFUND = "grant", "charge", "settle", "refund"
# No grant takes a balance past this, so the ledger's sums stay far inside the columns'
# range on every database (a grant of 9e18 would overflow them). Refunds are never capped:
# giving back what was charged must always succeed.
MAX_BALANCE = 1_000_000_000 * MICRO
MAX_NOTE = 500  # characters: the ledger's note column
_NO_CEILING = 2**62


_USERS = table_of(User)
# The two statements of every change of a balance: the conditional update, the ledger row.
_CONDITIONAL_ADD = (
    sa.update(_USERS)
    .where(
        _USERS.c.id == sa.bindparam("user_id"),
        _USERS.c.balance + sa.bindparam("amount") >= 0,
        _USERS.c.balance + sa.bindparam("amount") <= sa.bindparam("ceiling", type_=sa.BigInteger),
    )
    .values(balance=_USERS.c.balance + sa.bindparam("amount"))
    .returning(_USERS.c.balance)
)
# A top-up (a grant of credits) also re-arms the low-balance alert once the balance is
# back at or over the user's threshold (store.alerts): the next fall below it is reported.
_TOP_UP = _CONDITIONAL_ADD.values(
    balance=_USERS.c.balance + sa.bindparam("amount"),
    low_balance_alerted=sa.case(
        (
            sa.or_(
                _USERS.c.low_balance_threshold.is_(None),
                _USERS.c.balance + sa.bindparam("amount") >= _USERS.c.low_balance_threshold,
            ),
            sa.false(),
        ),
        else_=_USERS.c.low_balance_alerted,
    ),
)
_LEDGER_ROW = sa.insert(table_of(LedgerEntry))

_KEYS = table_of(ApiKey)
_LEDGER = table_of(LedgerEntry)
_WHEN = _KEYS.c.expires_at.type
# The start of the key's budget period now (bound per call from store.budgets.period_starts;
# NULL for a budget over the key's whole life) and whether its stored spend is of that period.
_CURRENT_START = sa.case(
    *((_KEYS.c.budget_period == period, sa.bindparam(period, type_=_WHEN)) for period in budgets.PERIODS),
    else_=sa.null(),
)
_IN_PERIOD = sa.or_(_KEYS.c.budget_period.is_(None), _KEYS.c.budget_period_start >= _CURRENT_START)
_SPENT_NOW = sa.case((_IN_PERIOD, _KEYS.c.budget_spent), else_=0)
_COST = sa.bindparam("cost", type_=sa.BigInteger)
# The key's half of the admission, one conditional statement on the key's row: the key is
# live (enabled, not revoked, not expired), and its budget, if any, covers the hold after
# what it spent this period; the hold is added to that spend, and a period that is over
# rolls over (spend and alert level back to 0) in the same statement. A row condition,
# so PostgreSQL re-checks it against the row as the previous debit left it: concurrent
# calls on one key queue on its row and none can pass a budget that another used up.
# It runs before the user's statement, the order every writer of both rows keeps (the give-
# back below also comes before the balance), so no two transactions wait on each other.
_KEY_ADMIT = (
    sa.update(_KEYS)
    .where(
        _KEYS.c.id == sa.bindparam("key_id"),
        _KEYS.c.user_id == sa.bindparam("owner_id"),
        _KEYS.c.enabled.is_(True),
        _KEYS.c.revoked_at.is_(None),
        sa.or_(_KEYS.c.expires_at.is_(None), _KEYS.c.expires_at > sa.bindparam("now", type_=_WHEN)),
        sa.or_(_KEYS.c.budget.is_(None), _SPENT_NOW + _COST <= _KEYS.c.budget),
    )
    .values(
        budget_spent=_SPENT_NOW + _COST,
        budget_period_start=sa.case((_IN_PERIOD, _KEYS.c.budget_period_start), else_=_CURRENT_START),
        budget_alert_level=sa.case((_IN_PERIOD, _KEYS.c.budget_alert_level), else_=0),
    )
    .returning(
        _KEYS.c.allowed_models,
        _KEYS.c.budget,
        _KEYS.c.budget_spent,
        _KEYS.c.budget_period_start,
        _KEYS.c.budget_alert_level,
    )
)
# The user's half: the balance covers the hold and the user's API access is on.
_USER_ADMIT = (
    sa.update(_USERS)
    .where(
        _USERS.c.id == sa.bindparam("user_id"),
        _USERS.c.balance + sa.bindparam("amount") >= 0,
        _USERS.c.api_enabled.is_(True),
    )
    .values(balance=_USERS.c.balance + sa.bindparam("amount"))
    .returning(_USERS.c.balance, _USERS.c.low_balance_threshold, _USERS.c.low_balance_alerted)
)
# A key without a budget (as the caller's cached record says) is admitted by the user's
# statement alone, as before budgets existed: the key's state checked inside it, and that
# it still has no budget (one set since makes this refuse, and the key's own statement
# decides). Its spend is not counted: a budget counts from when it is set. Its allow-list
# comes back with the balance, read in the same statement.
_KEY_LIVE_WITHOUT_BUDGET = sa.exists().where(
    _KEYS.c.id == sa.bindparam("key_id"),
    _KEYS.c.user_id == _USERS.c.id,
    _KEYS.c.enabled.is_(True),
    _KEYS.c.revoked_at.is_(None),
    sa.or_(_KEYS.c.expires_at.is_(None), _KEYS.c.expires_at > sa.bindparam("now", type_=_WHEN)),
    _KEYS.c.budget.is_(None),
)
_ADMIT_WITHOUT_BUDGET = (
    sa.update(_USERS)
    .where(
        _USERS.c.id == sa.bindparam("user_id"),
        _USERS.c.balance + sa.bindparam("amount") >= 0,
        _USERS.c.api_enabled.is_(True),
        _KEY_LIVE_WITHOUT_BUDGET,
    )
    .values(balance=_USERS.c.balance + sa.bindparam("amount"))
    .returning(
        _USERS.c.balance,
        _USERS.c.low_balance_threshold,
        _USERS.c.low_balance_alerted,
        sa.select(_KEYS.c.allowed_models).where(_KEYS.c.id == sa.bindparam("key_id")).scalar_subquery(),
    )
)
# A free call (cost 0) changes nothing: the same conditions, read.
_ADMISSIBLE = sa.select(_USERS.c.balance, _KEYS.c.allowed_models).where(
    _USERS.c.id == sa.bindparam("user_id"),
    _USERS.c.api_enabled.is_(True),
    _KEYS.c.id == sa.bindparam("key_id"),
    _KEYS.c.user_id == _USERS.c.id,
    _KEYS.c.enabled.is_(True),
    _KEYS.c.revoked_at.is_(None),
    sa.or_(_KEYS.c.expires_at.is_(None), _KEYS.c.expires_at > sa.bindparam("now", type_=_WHEN)),
)
# What a settlement or refund returns also leaves the spend of the key that paid the hold,
# but only while the key still counts the period the hold was counted in (a period that
# rolled over since forgot it already). The key and the period come from the charge row.
_CHARGE_OF = sa.and_(_LEDGER.c.kind == CHARGE, _LEDGER.c.ref == sa.bindparam("ref"))
_BACK = sa.bindparam("back", type_=sa.BigInteger)
_GIVE_BACK = (
    sa.update(_KEYS)
    .where(
        _KEYS.c.id == sa.select(_LEDGER.c.api_key_id).where(_CHARGE_OF).scalar_subquery(),
        _KEYS.c.budget_period_start.is_not_distinct_from(
            sa.select(_LEDGER.c.key_period_start).where(_CHARGE_OF).scalar_subquery()
        ),
    )
    .values(budget_spent=sa.case((_KEYS.c.budget_spent >= _BACK, _KEYS.c.budget_spent - _BACK), else_=0))
)


def _apply(
    session: Session | sa.Connection,
    *,
    user_id: int,
    amount: int,
    kind: str,
    ref: str | None = None,
    model: str | None = None,
    note: str | None = None,
    actor_user_id: int | None = None,
    ceiling: int = _NO_CEILING,
    commit: bool = True,
) -> int | None:
    """Add `amount` (may be negative) unless the balance would drop below zero (or rise
    past `ceiling`), with its ledger row. Returns the new balance, or None when refused
    (rolled back). Commits unless `commit` is False. `session` may be a Core Connection.
    """
    conn = _connection(session)
    statement = _TOP_UP if kind == GRANT and amount > 0 else _CONDITIONAL_ADD
    row = conn.execute(statement, {"user_id": user_id, "amount": amount, "ceiling": ceiling}).first()
    if row is None:
        session.rollback()
        return None
    new_balance = row[0]
    _ledger_row(
        conn,
        user_id=user_id,
        amount=amount,
        balance_after=new_balance,
        kind=kind,
        ref=ref,
        model=model,
        note=note,
        actor_user_id=actor_user_id,
    )
    if commit:
        session.commit()
    return new_balance


def _ledger_row(conn: sa.Connection, **values: object) -> None:
    conn.execute(_LEDGER_ROW, {"api_key_id": None, "key_period_start": None, "created_at": utcnow(), **values})


def _connection(session: Session | sa.Connection) -> sa.Connection:
    """The Core connection the statements run on, in the session's transaction: plain Core
    execution, as the ORM adds nothing to two statements on one table each."""
    return session.connection() if isinstance(session, Session) else session


@on_connection
def debit_for_request(
    session: Session | sa.Connection,
    *,
    user_id: int,
    cost: int,
    ref: str,
    model: str | None = None,
    key_id: int | None = None,
    hold: holds.HoldInfo | None = None,
    alerts: bool = False,
    key_budgeted: bool = True,
) -> int:
    """Charge `cost` for request or task `ref`; returns the new balance.

    With `key_id` (every API model call) the key must be live and enabled (KeyNotUsable),
    `model` on its allow-list (ModelNotAllowed) and its budget, if it has one, must cover
    `cost` after its spend this period (KeyBudgetExceeded); the user's API access must be
    on (KeyNotUsable) and the balance enough (InsufficientCredits). Whatever refuses,
    nothing changes. `key_budgeted=False` (the caller's cached record shows no budget)
    lets a key without a budget through the user's statement alone; a budget set since
    is found there and its own statement runs after all.
    With `hold`, the hold's record (store.holds) is written in the same transaction; with
    `alerts`, a balance or key budget that this charge takes across its threshold queues
    its operator alert (store.alerts) in it too. A cost of 0 writes nothing (the key is
    still checked).
    """
    if cost < 0:
        raise InvalidInput("cost must not be negative")
    if key_id is None:
        if cost == 0:
            return balance(session, user_id=user_id)
        new_balance = _apply(session, user_id=user_id, amount=-cost, kind=CHARGE, ref=ref, model=model, commit=False)
        if new_balance is None:
            raise InsufficientCredits("Insufficient credits")
    elif cost == 0:
        return _admit_free(session, user_id=user_id, key_id=key_id, model=model)
    else:
        admitted = None
        if not key_budgeted:
            admitted = _admit_without_budget(
                session, user_id=user_id, cost=cost, ref=ref, model=model, key_id=key_id, alerts=alerts
            )
        if admitted is None:
            admitted = _admit(session, user_id=user_id, cost=cost, ref=ref, model=model, key_id=key_id, alerts=alerts)
        new_balance = admitted
    if hold is not None:
        holds.open_hold(_connection(session), ref=ref, user_id=user_id, model=model, amount=cost, info=hold)
    session.commit()
    return new_balance


def _admit_without_budget(
    session: Session | sa.Connection, *, user_id: int, cost: int, ref: str, model: str | None, key_id: int, alerts: bool
) -> int | None:
    """The user's statement (the key's state inside it), then the charge row; not committed.
    None when the key turns out to have a budget (rolled back): `_admit` decides then."""
    conn = _connection(session)
    row = conn.execute(_ADMIT_WITHOUT_BUDGET, {"user_id": user_id, "amount": -cost, "key_id": key_id, "now": utcnow()})
    admitted = row.first()
    if admitted is None:
        session.rollback()
        refusal = _refusal(session, user_id=user_id, key_id=key_id, cost=cost)
        if isinstance(refusal, KeyNotUsable):
            raise refusal
        if _has_budget(session, key_id=key_id):
            return None
        raise InsufficientCredits("Insufficient credits")
    new_balance, threshold, balance_alerted, allowed = admitted
    if not _allowed(allowed, model):
        session.rollback()
        raise ModelNotAllowed("this key may not call that model")
    _ledger_row(conn, user_id=user_id, amount=-cost, balance_after=new_balance, kind=CHARGE, ref=ref, model=model)
    if alerts and threshold is not None and not balance_alerted and new_balance < threshold:
        store_alerts.balance_crossed(conn, user_id=user_id, balance=new_balance, threshold=threshold)
    return new_balance


def _has_budget(session: Session | sa.Connection, *, key_id: int) -> bool:
    budget = session.execute(sa.select(_KEYS.c.budget).where(_KEYS.c.id == key_id)).scalar()
    session.rollback()
    return budget is not None


def _admit(
    session: Session | sa.Connection, *, user_id: int, cost: int, ref: str, model: str | None, key_id: int, alerts: bool
) -> int:
    """The key's statement, then the user's, then the charge row (naming the key and the
    period its spend counted in, for the give-back); not committed."""
    conn = _connection(session)
    now = utcnow()
    params = {"key_id": key_id, "owner_id": user_id, "cost": cost, "now": now, **budgets.period_starts(now)}
    key = conn.execute(_KEY_ADMIT, params).first()
    if key is None:
        session.rollback()
        refusal = _refusal(session, user_id=user_id, key_id=key_id, cost=cost)
        if refusal is None:  # the key changed between the two reads: once more, afresh
            params["now"] = now = utcnow()
            params.update(budgets.period_starts(now))
            conn = _connection(session)
            key = conn.execute(_KEY_ADMIT, params).first()
        if key is None:
            session.rollback()
            refusal = refusal or _refusal(session, user_id=user_id, key_id=key_id, cost=cost)
            if refusal is None or isinstance(refusal, KeyBudgetExceeded):
                if alerts:
                    store_alerts.budget_refused(session, key_id=key_id)
                raise refusal or KeyBudgetExceeded(_BUDGET_SPENT)
            raise refusal
    allowed, budget, spent, period_start, alerted_level = key
    if not _allowed(allowed, model):
        session.rollback()
        raise ModelNotAllowed("this key may not call that model")
    user = conn.execute(_USER_ADMIT, {"user_id": user_id, "amount": -cost}).first()
    if user is None:
        session.rollback()
        refusal = _refusal(session, user_id=user_id, key_id=key_id, cost=0)
        raise refusal if isinstance(refusal, KeyNotUsable) else InsufficientCredits("Insufficient credits")
    new_balance, threshold, balance_alerted = user
    _ledger_row(
        conn,
        user_id=user_id,
        amount=-cost,
        balance_after=new_balance,
        kind=CHARGE,
        ref=ref,
        model=model,
        api_key_id=key_id,
        key_period_start=period_start,
    )
    if alerts:
        # Only a crossing writes anything more (the flag or level, and the alert's row).
        if threshold is not None and not balance_alerted and new_balance < threshold:
            store_alerts.balance_crossed(conn, user_id=user_id, balance=new_balance, threshold=threshold)
        if budget is not None and (level := budgets.alert_level(spent=spent, budget=budget)) > alerted_level:
            store_alerts.budget_crossed(conn, key_id=key_id, level=level, spent=spent, budget=budget)
    return new_balance


def _admit_free(session: Session | sa.Connection, *, user_id: int, key_id: int, model: str | None) -> int:
    row = _connection(session).execute(_ADMISSIBLE, {"user_id": user_id, "key_id": key_id, "now": utcnow()}).first()
    session.rollback()
    if row is None:
        raise _refusal(session, user_id=user_id, key_id=key_id, cost=0) or NotFound("no such user")
    if not _allowed(row[1], model):
        raise ModelNotAllowed("this key may not call that model")
    return row[0]


def _allowed(allowed_models: str | None, model: str | None) -> bool:
    return allowed_models is None or (model is not None and model in json.loads(allowed_models))


_BUDGET_SPENT = "the key's budget for this period is spent"


def _refusal(session: Session | sa.Connection, *, user_id: int, key_id: int, cost: int) -> StoreError | None:
    """Why `key_id` may not make a model call of `cost` now (KeyNotUsable, KeyBudgetExceeded),
    or None when it may."""
    row = session.execute(
        sa.select(
            _KEYS.c.enabled,
            _KEYS.c.revoked_at,
            _KEYS.c.expires_at,
            _KEYS.c.budget,
            _KEYS.c.budget_spent,
            _KEYS.c.budget_period,
            _KEYS.c.budget_period_start,
            _USERS.c.api_enabled,
        )
        .join(_USERS, _USERS.c.id == _KEYS.c.user_id)
        .where(_KEYS.c.id == key_id, _KEYS.c.user_id == user_id)
    ).first()
    session.rollback()
    if row is None:
        return KeyNotUsable("the key does not exist", revoked=True)
    enabled, revoked_at, expires_at, budget, spent, period, period_start, api_enabled = row
    now = utcnow()
    if revoked_at is not None:
        return KeyNotUsable("the key was revoked", revoked=True)
    if expires_at is not None and budgets.aware(expires_at) <= now:
        return KeyNotUsable("the key expired", revoked=True)
    if not enabled:
        return KeyNotUsable("the key is disabled", revoked=False)
    if not api_enabled:
        return KeyNotUsable("API access is disabled for this user", revoked=False)
    if (
        budget is not None
        and budgets.spent_now(spent=spent, period=period, period_start=period_start, now=now) + cost > budget
    ):
        return KeyBudgetExceeded(_BUDGET_SPENT)
    return None


def _give_back(session: Session | sa.Connection, *, ref: str, back: int) -> None:
    """Take `back` off the spend of the key that paid `ref`'s hold (see _GIVE_BACK)."""
    if back > 0:
        _connection(session).execute(_GIVE_BACK, {"ref": ref, "back": back})


def _rows_for(session: Session, ref: str) -> list[LedgerEntry]:
    rows = list(session.exec(select(LedgerEntry).where(col(LedgerEntry.ref) == ref)))
    session.rollback()  # end the read: SQLite cannot upgrade a read to a write safely
    return rows


def refund(session: Session, *, ref: str, note: str | None = None, unless_settled: bool = False) -> bool:
    """Give back everything charged for request or task `ref` (its hold, less any
    settlement), at most once, so a refund can never exceed what was charged.
    Returns False when nothing was charged for `ref` or it was refunded already (or, with
    `unless_settled`, settled: a call whose own process settled it was delivered).
    """
    rows = _rows_for(session, ref)
    charge = next((r for r in rows if r.kind == CHARGE), None)
    if charge is None or any(r.kind == REFUND or (unless_settled and r.kind == SETTLE) for r in rows):
        return False
    net = sum(r.amount for r in rows if r.kind in (CHARGE, SETTLE))
    try:
        _give_back(session, ref=ref, back=-net)
        refunded = _apply(
            session,
            user_id=charge.user_id,
            amount=-net,
            kind=REFUND,
            ref=ref,
            model=charge.model,
            note=note,
            commit=False,
        )
        if refunded is None:
            return False
        holds.close_hold(_connection(session), ref=ref)
        session.commit()
        return True
    except IntegrityError:  # (kind, ref) is unique: a second refund of one ref
        session.rollback()
        return False


@on_connection
def settle_hold(
    session: Session | sa.Connection,
    *,
    user_id: int,
    ref: str,
    held: int,
    cost: int,
    model: str | None = None,
    key_budgeted: bool = True,
) -> int | None:
    """Settle request `ref`, whose hold of `held` the caller knows, at `cost` (capped at
    the hold): one `settle` row, no reads. For the request path, which knows the request
    was neither refunded nor settled; (kind, ref) being unique, a second settlement of the
    same request fails instead of paying twice. Returns the charge that stands, or None
    when the hold's record was gone: its lease ran out while the call was still served
    (a stalled process) and the reconciler took it, to settle or refund it once.
    `key_budgeted=False` (the key had no budget, as the debit's caller saw it) skips the
    key's give-back: were a budget set since, its spend keeps the whole hold, which only
    ever stops the key early, never late."""
    final = final_charge(held, cost)
    if not holds.close_hold(_connection(session), ref=ref):
        session.rollback()  # it may have been refunded already: settling too would pay twice
        return None
    if key_budgeted:
        _give_back(session, ref=ref, back=held - final)
    _apply(
        session,
        user_id=user_id,
        amount=held - final,
        kind=SETTLE,
        ref=ref,
        model=model,
        note=f"used {format_credits(final)} of {format_credits(held)} held",
        commit=False,
    )
    session.commit()
    return final


def settle(session: Session, *, ref: str, cost: int | None, note: str | None = None, commit: bool = True) -> int | None:
    """Settle request `ref` at `cost` micro-credits (None: its whole hold), capped at its
    hold: the difference comes back in one `settle` row. Returns the charge that stands, or
    None when nothing was held for `ref` or it was settled or refunded already (nothing changes)."""
    rows = _rows_for(session, ref)
    charge = next((r for r in rows if r.kind == CHARGE), None)
    if charge is None or any(r.kind in (SETTLE, REFUND) for r in rows):
        return None
    held = -charge.amount
    final = final_charge(held, held if cost is None else cost)
    note = note or f"used {format_credits(final)} of {format_credits(held)} held"
    try:
        _give_back(session, ref=ref, back=held - final)
        _apply(
            session,
            user_id=charge.user_id,
            amount=held - final,
            kind=SETTLE,
            ref=ref,
            model=charge.model,
            note=note[:500],
            commit=False,
        )
        holds.close_hold(_connection(session), ref=ref)
        if commit:
            session.commit()
    except IntegrityError:  # settled concurrently
        session.rollback()
        return None
    return final


def grant(
    session: Session,
    *,
    user_id: int,
    amount: int,
    note: str | None = None,
    actor_user_id: int | None = None,
) -> int:
    """Add (or, negative, remove) credits by hand; returns the new balance."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput("amount must be a whole number")
    if amount == 0:
        raise InvalidInput("amount must not be zero")
    if not -MAX_BALANCE <= amount <= MAX_BALANCE:
        raise InvalidInput(f"amount must be between -{MAX_BALANCE // MICRO:,} and {MAX_BALANCE // MICRO:,}")
    if note is not None and len(note) > MAX_NOTE:
        # Refused, never cut: the note says why the balance moved, and half a reason is none.
        raise InvalidInput(f"the note is {len(note):,} characters; at most {MAX_NOTE} fit")
    if session.get(User, user_id) is None:
        raise NotFound("no such user")
    session.rollback()  # end the read so the update starts its own transaction
    new_balance = _apply(
        session,
        user_id=user_id,
        amount=amount,
        kind=GRANT,
        note=note,
        actor_user_id=actor_user_id,
        ceiling=MAX_BALANCE,
    )
    if new_balance is None:
        if amount > 0:
            raise InvalidInput(f"the balance would exceed {MAX_BALANCE // MICRO:,}")
        raise InsufficientCredits("the balance would drop below zero")
    return new_balance


def grant_in_transaction(
    session: Session, *, user_id: int, amount: int, note: str, ref: str | None = None, actor_user_id: int | None = None
) -> int | None:
    """A grant of `amount` (negative: a removal) inside the caller's transaction (a sign-up,
    a purchase, a redemption, a payment taken back: it commits with what caused it).
    Returns the new balance, or None when the balance would pass MAX_BALANCE or drop below
    zero; then the caller's transaction was rolled back."""
    if amount == 0:
        raise InvalidInput("amount must not be zero")
    return _apply(
        session,
        user_id=user_id,
        amount=amount,
        kind=GRANT,
        ref=ref,
        note=note,
        actor_user_id=actor_user_id,
        ceiling=MAX_BALANCE,
        commit=False,
    )


@reads
def balance(session: Session | sa.Connection, *, user_id: int) -> int:
    value = session.execute(sa.select(col(User.balance)).where(col(User.id) == user_id)).scalar_one_or_none()
    if value is None:
        raise NotFound("no such user")
    return value


@reads
def ledger_sum(session: Session, *, user_id: int) -> int:
    return session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(col(LedgerEntry.amount)), 0)).where(col(LedgerEntry.user_id) == user_id)
    ).scalar_one()


@reads
def ledger_page(session: Session, *, user_id: int, limit: int = 50, before_id: int | None = None) -> list[LedgerEntry]:
    """The user's ledger, newest first; pass the last id seen as `before_id` for the next page."""
    query = select(LedgerEntry).where(col(LedgerEntry.user_id) == user_id)
    if before_id is not None:
        query = query.where(col(LedgerEntry.id) < before_id)
    return list(session.exec(query.order_by(col(LedgerEntry.id).desc()).limit(limit)))

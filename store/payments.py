"""Credits bought through Stripe Checkout: what the platform records of each payment, and
what each of Stripe's signed events does to a balance (dashboard/billing_routes.py
verifies the signatures; this module trusts what it is handed).

    open_checkout       a Checkout Session the platform created: its pack, price and user
    complete_checkout   `checkout.session.completed` (or `…async_payment_succeeded`) of a
                        paid session the platform created, for the price it asked: the pack's
                        credits, as one `grant` ledger row naming the payment (ref `payment:<id>`)
    reverse_payment     `charge.refunded` / `charge.dispute.created`: the credits that stand
                        for the money taken back leave the balance

Each event is handled at most once: its id is written (primary key) in the transaction of
its effect, so a replay, or two deliveries at once, change nothing the second time. A
session is credited at most once too, whatever events name it: its row goes from `open`
to `paid` in the transaction that writes the grant.

Refunds and disputes never take a balance below zero (it may have been spent): what the
balance holds is taken now, the rest is recorded as the payment's `shortfall` and the
operator is alerted (store.alerts) to settle it with the user.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from . import alerts, credits
from .db import reads, rowcount
from .errors import InvalidInput
from .models import Payment, PaymentEvent, User, utcnow
from .money import format_credits
from .packs import CreditPack

OPEN, PAID, REVERSED = "open", "paid", "reversed"
# What became of an event (the webhook answers 200 for each: Stripe must not retry them).
CREDITED, REVERSED_NOW, DUPLICATE, IGNORED = "credited", "reversed", "duplicate", "ignored"


@dataclass(frozen=True, slots=True)
class Outcome:
    result: str  # CREDITED | REVERSED_NOW | DUPLICATE | IGNORED
    reason: str = ""
    credits: int = 0  # micro-credits granted or taken back
    shortfall: int = 0


def open_checkout(session: Session, *, user_id: int, pack: CreditPack, session_id: str, currency: str) -> Payment:
    """Record the Checkout Session created for `user_id` and `pack`."""
    if not session_id or len(session_id) > 255:
        raise InvalidInput("a Checkout Session id is 1 to 255 characters")
    now = utcnow()
    payment = Payment(
        session_id=session_id,
        user_id=user_id,
        pack_id=pack.id,
        credits=pack.credits,
        amount=pack.price,
        currency=currency,
        status=OPEN,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    session.commit()
    return payment


def _claim_event(session: Session, event_id: str, event_type: str) -> bool:
    """Write the event's id in the current transaction; False when it was handled already."""
    if not event_id or len(event_id) > 255:
        raise InvalidInput("an event id is 1 to 255 characters")
    session.add(PaymentEvent(event_id=event_id, type=event_type[:100], created_at=utcnow()))
    try:
        session.flush()  # first in the transaction: a second delivery waits here, then fails
    except IntegrityError:
        session.rollback()
        return False
    return True


def _done(session: Session, outcome: Outcome) -> Outcome:
    session.commit()  # the event's id, with whatever it did
    return outcome


def complete_checkout(
    session: Session,
    *,
    event_id: str,
    event_type: str,
    session_id: str,
    payment_status: str | None,
    payment_intent: str | None,
    amount_total: int | None,
    currency: str | None,
) -> Outcome:
    """Credit the pack of a completed, paid Checkout Session, once per event and per session."""
    if not _claim_event(session, event_id, event_type):
        return Outcome(DUPLICATE, "this event was handled before")
    payment = session.exec(select(Payment).where(col(Payment.session_id) == session_id)).first()
    if payment is None:
        return _done(session, Outcome(IGNORED, "no checkout of this platform has that session id"))
    if payment_status != "paid":
        return _done(session, Outcome(IGNORED, f"the session is {payment_status or 'not paid'}"))
    if amount_total != payment.amount or (currency or "").lower() != payment.currency:
        return _done(session, Outcome(IGNORED, "the amount paid is not the pack's price"))
    now = utcnow()
    paid = rowcount(
        session.execute(
            sa.update(Payment)
            .where(col(Payment.id) == payment.id, col(Payment.status) == OPEN)
            .values(status=PAID, paid_at=now, updated_at=now, payment_intent=(payment_intent or None))
        )
    )
    if not paid:
        return _done(session, Outcome(DUPLICATE, "this session was credited before"))
    note = (
        f"Stripe payment {payment_intent or 'without a payment intent'} (checkout {session_id}): "
        f"{format_credits(payment.credits)} credits for {payment.amount / 100:.2f} {payment.currency.upper()}"
    )
    granted = credits.grant_in_transaction(
        session, user_id=payment.user_id, amount=payment.credits, ref=f"payment:{payment.id}", note=note[:500]
    )
    if granted is None:  # the balance would pass MAX_BALANCE: rolled back, Stripe retries later
        raise InvalidInput("the balance would exceed its maximum")
    return _done(session, Outcome(CREDITED, credits=payment.credits))


def reverse_payment(
    session: Session,
    *,
    event_id: str,
    event_type: str,
    payment_intent: str | None,
    amount_refunded: int | None = None,
    amount_disputed: int | None = None,
    alert: bool = False,
) -> Outcome:
    """Take back the credits that stand for money returned to the payer: `amount_refunded`
    (cents, cumulative, as `charge.refunded` reports it) or `amount_disputed` (a dispute's
    amount). Credits go in proportion (rounded up), never more than the pack, never below
    a zero balance (the rest is the shortfall, alerted with `alert`)."""
    if not _claim_event(session, event_id, event_type):
        return Outcome(DUPLICATE, "this event was handled before")
    payment = (
        session.exec(select(Payment).where(col(Payment.payment_intent) == payment_intent).with_for_update()).first()
        if payment_intent
        else None
    )
    if payment is None or payment.status == OPEN:
        return _done(session, Outcome(IGNORED, "no credited payment of this platform has that payment intent"))
    refunded = max(payment.amount_refunded, min(amount_refunded or 0, payment.amount))
    disputed = max(payment.amount_disputed, min(amount_disputed or 0, payment.amount))
    returned = min(payment.amount, refunded + disputed)
    owed = -(-payment.credits * returned // payment.amount)  # rounded up: never less than the money
    take = owed - payment.credits_reversed
    values: dict = {"amount_refunded": refunded, "amount_disputed": disputed, "updated_at": utcnow()}
    if take <= 0:
        session.execute(sa.update(Payment).where(col(Payment.id) == payment.id).values(**values))
        return _done(session, Outcome(IGNORED, "nothing more to take back"))
    balance = session.execute(
        sa.select(col(User.balance)).where(col(User.id) == payment.user_id).with_for_update()
    ).scalar_one()
    taken = min(take, balance)
    short = take - taken
    what = "dispute" if event_type.startswith("charge.dispute") else "refund"
    if taken:
        note = (
            f"Stripe {what} of payment {payment.payment_intent} (event {event_id}): "
            f"{format_credits(taken)} credits taken back"
            + (f", {format_credits(short)} could not be (spent)" if short else "")
        )
        left = credits.grant_in_transaction(
            session, user_id=payment.user_id, amount=-taken, ref=f"stripe:{event_id}"[:64], note=note[:500]
        )
        assert left is not None  # the balance row is locked and covers `taken`
    values.update(
        credits_reversed=owed,
        shortfall=payment.shortfall + short,
        status=REVERSED if owed >= payment.credits else PAID,
    )
    session.execute(sa.update(Payment).where(col(Payment.id) == payment.id).values(**values))
    if short and alert:
        email = session.execute(sa.select(col(User.email)).where(col(User.id) == payment.user_id)).scalar_one()
        alerts.enqueue(
            session.connection(),
            kind=alerts.PAYMENT_SHORTFALL,
            payload={
                "user_id": payment.user_id,
                "email": email,
                "payment_intent": payment.payment_intent,
                "event": what,
                "taken_back": format_credits(taken),
                "shortfall": format_credits(short),
            },
        )
    return _done(session, Outcome(REVERSED_NOW, credits=taken, shortfall=short))


@reads
def payments_of(session: Session, *, user_id: int, limit: int = 20) -> list[Payment]:
    """The user's checkouts, newest first (the Credits page: open, paid, reversed)."""
    query = select(Payment).where(col(Payment.user_id) == user_id).order_by(col(Payment.id).desc()).limit(limit)
    return list(session.exec(query))

"""Buying credits: backend routes mounted beside the sign-in routes (auth_routes includes them).

    POST /billing/checkout        pack                  (signed in, same site) -> 303 to Stripe Checkout
    POST /billing/stripe-webhook  Stripe's event, signed (`Stripe-Signature`)  -> 200, or 400 when the
                                  signature (or the body) is not Stripe's: nothing changes then
    POST /billing/redeem          code                  (signed in, same site) -> 303 to the Credits page

The Credits page posts plain forms here; a failure comes back as `/credits?error=<code>`
(`billing_message`), a redemption as `/credits?redeemed=<credits>`, a return from Stripe
as `/credits?checkout=success|cancelled`. Credits are granted only by the webhook, never by
the return from Checkout (anyone can open a URL): the session's `checkout.session.completed`
event, verified with Stripe's own library (`stripe.Webhook.construct_event`: the raw body,
the header, STRIPE_WEBHOOK_SECRET, five minutes' tolerance), is what store.payments credits,
once per event and once per session.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import stripe
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from store import codes, payments
from store.errors import InvalidInput
from store.money import format_credits
from store.packs import find_pack
from store.settings import Settings

from . import backend, routes
from .auth import viewer_from_cookie
from .auth_routes import cross_site

log = logging.getLogger(__name__)

CHECKOUT = "/billing/checkout"
STRIPE_WEBHOOK = "/billing/stripe-webhook"
REDEEM = "/billing/redeem"
STRIPE_TIMEOUT_S = 20.0

BILLING_ERRORS = {
    "unavailable": "Buying credits is not set up on this platform.",
    "pack": "Choose one of the credit packs on offer.",
    "stripe": "The payment page could not be opened. Try again in a moment.",
    "code": "This code is not valid (used, expired or mistyped).",
    "ceiling": "Your balance is at its maximum.",
}


def billing_message(code: str) -> str:
    """The Credits page's text for `?error=code` (empty for an unknown code)."""
    return BILLING_ERRORS.get(code, "")


def _back(**query: str) -> RedirectResponse:
    return RedirectResponse(f"{routes.CREDITS}?{urlencode(query)}", status_code=303)


def _origin(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def stripe_client(settings: Settings) -> tuple[stripe.StripeClient, stripe.HTTPXClient]:
    """A Stripe client on httpx (async), at STRIPE_API_BASE when set; close the second after use."""
    http = stripe.HTTPXClient(timeout=STRIPE_TIMEOUT_S)
    base = {"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else None
    assert settings.stripe_secret_key is not None  # configured (Settings.stripe_configured)
    client = stripe.StripeClient(settings.stripe_secret_key, base_addresses=base, http_client=http)  # type: ignore[arg-type]
    return client, http


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post(CHECKOUT, include_in_schema=False)
    async def checkout(request: Request) -> Response:
        """Open a Stripe Checkout Session for one pack of CREDIT_PACKS and send the browser there."""
        if cross_site(request):
            return PlainTextResponse("cross-site form submission refused", status_code=403)
        viewer = await viewer_from_cookie(request.headers.get("cookie"))
        if viewer is None:
            return RedirectResponse(f"{routes.LOGIN}?{urlencode({'next': routes.CREDITS})}", status_code=303)
        settings = backend.settings()
        if not settings.stripe_configured:
            return _back(error="unavailable")
        pack = find_pack(settings.packs, str((await request.form()).get("pack", "")))
        if pack is None:
            return _back(error="pack")
        origin = _origin(request, settings)
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": settings.stripe_currency,
                        "unit_amount": pack.price,
                        "product_data": {"name": pack.label},
                    },
                }
            ],
            "client_reference_id": str(viewer.id),
            "customer_email": viewer.email,
            "metadata": {"user_id": str(viewer.id), "pack": pack.id},
            "success_url": f"{origin}{routes.CREDITS}?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{origin}{routes.CREDITS}?checkout=cancelled",
        }
        client, http = stripe_client(settings)
        try:
            created = await client.v1.checkout.sessions.create_async(params)  # type: ignore[arg-type]
        except stripe.StripeError as exc:
            log.warning("Stripe refused a Checkout Session: %s", type(exc).__name__)
            return _back(error="stripe")
        finally:
            await http.close_async()
        if not created.url:
            return _back(error="stripe")
        await backend.run(
            payments.open_checkout,
            user_id=viewer.id,
            pack=pack,
            session_id=created.id,
            currency=settings.stripe_currency,
        )
        return RedirectResponse(created.url, status_code=303)

    @router.post(STRIPE_WEBHOOK, include_in_schema=False)
    async def stripe_webhook(request: Request) -> Response:
        """Verify Stripe's signature over the raw body, then let store.payments act on the event."""
        settings = backend.settings()
        if not settings.stripe_webhook_secret:
            return JSONResponse({"error": "Stripe is not configured"}, status_code=404)
        payload = await request.body()
        try:
            event = stripe.Webhook.construct_event(
                payload, request.headers.get("stripe-signature"), settings.stripe_webhook_secret
            )
        except (ValueError, stripe.SignatureVerificationError):
            return JSONResponse({"error": "invalid signature"}, status_code=400)
        outcome = await handle_event(event.to_dict(), alert=settings.alert_webhook_url is not None)
        return JSONResponse({"received": True, "result": outcome.result})

    @router.post(REDEEM, include_in_schema=False)
    async def redeem(request: Request) -> Response:
        """Redeem a code for the signed-in user."""
        if cross_site(request):
            return PlainTextResponse("cross-site form submission refused", status_code=403)
        viewer = await viewer_from_cookie(request.headers.get("cookie"))
        if viewer is None:
            return RedirectResponse(f"{routes.LOGIN}?{urlencode({'next': routes.CREDITS})}", status_code=303)
        code = str((await request.form()).get("code", ""))
        try:
            granted = await backend.run(
                codes.redeem, secret_key=backend.settings().secret_key, user_id=viewer.id, code=code
            )
        except InvalidInput as exc:
            return _back(error="ceiling" if "exceed" in str(exc) else "code")
        return _back(redeemed=format_credits(granted))

    return router


async def handle_event(event: dict[str, Any], *, alert: bool) -> payments.Outcome:
    """What a verified event does (store.payments); other event types are acknowledged and ignored."""
    kind, event_id = str(event.get("type", "")), str(event.get("id", ""))
    obj = (event.get("data") or {}).get("object") or {}
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        return await backend.run(
            payments.complete_checkout,
            event_id=event_id,
            event_type=kind,
            session_id=str(obj.get("id", "")),
            payment_status=obj.get("payment_status"),
            payment_intent=_id_of(obj.get("payment_intent")),
            amount_total=obj.get("amount_total"),
            currency=obj.get("currency"),
        )
    if kind == "charge.refunded":
        return await backend.run(
            payments.reverse_payment,
            event_id=event_id,
            event_type=kind,
            payment_intent=_id_of(obj.get("payment_intent")),
            amount_refunded=_cents(obj.get("amount_refunded")),
            alert=alert,
        )
    if kind == "charge.dispute.created":
        return await backend.run(
            payments.reverse_payment,
            event_id=event_id,
            event_type=kind,
            payment_intent=_id_of(obj.get("payment_intent")),
            amount_disputed=_cents(obj.get("amount")),
            alert=alert,
        )
    return payments.Outcome(payments.IGNORED, f"{kind or 'an event'} is not handled")


def _id_of(value: object) -> str | None:
    """An id field, whether Stripe sent the id or (expanded) the object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _cents(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

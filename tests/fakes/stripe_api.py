"""A fake of the part of Stripe's API the platform uses, served for real over HTTP, and the
events Stripe would then send, signed as Stripe signs them.

    POST /v1/checkout/sessions      form-encoded as Stripe's SDKs send it (`line_items[0][price_data]
                                    [unit_amount]=500`); answers a `checkout.session` object with
                                    the fields stripe-python reads (`id`, `url`, `amount_total`, …).
                                    A wrong secret key answers 401 in Stripe's error shape;
                                    `fail_next(status)` makes the next call fail
    GET  /v1/checkout/sessions/{id} the session as it stands

The events (`completed`, `refunded`, `disputed`) are Stripe's `event` envelope around the
object, and `signature_header` is Stripe's scheme, written out here rather than borrowed from
the SDK the platform verifies with: `t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
import time
from urllib.parse import parse_qsl

import orjson
import uvicorn

from .upstream import free_port


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class FakeStripe:
    def __init__(self, secret_key: str) -> None:
        self.secret_key = secret_key
        self.base_url = ""  # set once served (STRIPE_API_BASE)
        self.sessions: dict[str, dict] = {}
        self.requests: list[dict] = []  # each call: method, path, form (flat, Stripe's bracket keys)
        self._failures: list[int] = []
        self._ids = itertools.count(1)

    def fail_next(self, status: int) -> None:
        self._failures.append(status)

    # ------------------------------------------------------------ the API

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        self.requests.append({"method": scope["method"], "path": scope["path"], "form": form, "headers": headers})
        status, answer = self._answer(scope["method"], scope["path"], form, headers)
        payload = orjson.dumps(answer)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"request-id", b"req_fake")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _answer(self, method: str, path: str, form: dict, headers: dict) -> tuple[int, dict]:
        if headers.get("authorization") != f"Bearer {self.secret_key}":
            return 401, _error("invalid_request_error", "Invalid API Key provided")
        if self._failures:
            status = self._failures.pop(0)
            return status, _error("api_error", "Something went wrong on Stripe's end.")
        if method == "POST" and path == "/v1/checkout/sessions":
            return 200, self._create_session(form)
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            found = self.sessions.get(path.rsplit("/", 1)[1])
            return (200, found) if found else (404, _error("invalid_request_error", "No such checkout.session"))
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path})")

    def _create_session(self, form: dict) -> dict:
        if form.get("mode") != "payment" or "line_items[0][price_data][unit_amount]" not in form:
            return _error("invalid_request_error", "Missing required param: line_items.")
        session_id = f"cs_test_{secrets.token_hex(29)}"  # Stripe's are 66 characters
        quantity = int(form.get("line_items[0][quantity]", "1"))
        amount = int(form["line_items[0][price_data][unit_amount]"]) * quantity
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "created": int(time.time()),
            "currency": form["line_items[0][price_data][currency]"],
            "customer_email": form.get("customer_email"),
            "livemode": False,
            "metadata": {k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")},
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form.get("success_url"),
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return session

    # ------------------------------------------------------------ what Stripe then sends

    def event(self, event_type: str, obj: dict, event_id: str | None = None) -> bytes:
        """An event envelope around `obj`, as the webhook body (bytes, as signed)."""
        return orjson.dumps(
            {
                "id": event_id or f"evt_{secrets.token_hex(12)}",
                "object": "event",
                "api_version": "2025-09-30.clover",
                "created": int(time.time()),
                "data": {"object": obj},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
            }
        )

    def completed(self, session_id: str, *, paid: bool = True, event_id: str | None = None) -> bytes:
        """`checkout.session.completed`: the customer paid (or, `paid=False`, a delayed method is pending)."""
        session = self.sessions[session_id]
        session.update(status="complete", payment_status="paid" if paid else "unpaid")
        session["payment_intent"] = session["payment_intent"] or f"pi_{secrets.token_hex(12)}"
        return self.event("checkout.session.completed", dict(session), event_id)

    def refunded(self, session_id: str, amount_refunded: int, event_id: str | None = None) -> bytes:
        """`charge.refunded`: `amount_refunded` is the charge's cumulative refunded amount."""
        session = self.sessions[session_id]
        charge = {
            "id": f"ch_{session_id[-12:]}",
            "object": "charge",
            "amount": session["amount_total"],
            "amount_refunded": amount_refunded,
            "currency": session["currency"],
            "payment_intent": session["payment_intent"],
            "refunded": amount_refunded >= session["amount_total"],
            "status": "succeeded",
        }
        return self.event("charge.refunded", charge, event_id)

    def disputed(self, session_id: str, amount: int, event_id: str | None = None) -> bytes:
        session = self.sessions[session_id]
        dispute = {
            "id": f"dp_{next(self._ids)}",
            "object": "dispute",
            "amount": amount,
            "charge": f"ch_{session_id[-12:]}",
            "currency": session["currency"],
            "payment_intent": session["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response",
        }
        return self.event("charge.dispute.created", dispute, event_id)


def _error(kind: str, message: str) -> dict:
    return {"error": {"type": kind, "message": message}}


class ServedStripe:
    """A FakeStripe on 127.0.0.1 in a background thread; its `base_url` is STRIPE_API_BASE."""

    def __init__(self, secret_key: str) -> None:
        self.app = FakeStripe(secret_key)
        self.port = free_port()
        self.app.base_url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> FakeStripe:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake Stripe did not start")
            time.sleep(0.02)
        return self.app

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

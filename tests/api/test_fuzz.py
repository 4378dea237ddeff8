"""Property-based fuzzing of the whole /api/v1 surface from its own OpenAPI document.

A real server (uvicorn in a thread) with real fake upstreams; a funded key. Every
generated request must: never get a 5xx it should not, answer errors in the seed's
shape with one of the spec's codes, and leave the ledger alone whenever it is rejected.
"""

from __future__ import annotations

import contextlib

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from sqlmodel import func, select

from api.app import create_app, create_v1
from api.errors import CODES
from api.runtime import Runtime
from store.db import get_engine, session_for
from store.migrate import migrate
from store.models import LedgerEntry
from store.money import MICRO
from store.settings import Settings

from ..conftest import TEST_SECRET, make_settings, reset_postgres
from ..factories import flat_seed_prices, make_key, make_user
from ..fakes.upstream import ServedUpstream
from ..serving import serve
from .fake_replicate import FakeUpstream

_spec = create_v1(Runtime(Settings(_env_file=None, database_url="sqlite://", secret_key=TEST_SECRET))).openapi()
schema = schemathesis.openapi.from_dict(_spec)


class Fuzzed:
    def __init__(self, tmp_path, stack: contextlib.ExitStack, url: str) -> None:
        chat = stack.enter_context(ServedUpstream(record=False))
        images = FakeUpstream().start()
        stack.callback(images.stop)
        migrate(url)
        self.engine = get_engine(url)
        flat_seed_prices(self.engine)  # the check below counts one flat fee
        self.user = make_user(self.engine, credits=1_000_000)
        self.key = make_key(self.engine, self.user, rpm=0)
        app = create_app(
            make_settings(
                url,
                tmp_path,
                openrouter_base_url=chat.base_url,
                replicate_base_url=f"{images.url}/v1",
                webhook_allow_private=True,
                max_body_bytes=64 * 1024,
            )
        )
        base, _ = stack.enter_context(serve(app))
        self.base_url = f"{base}/api/v1"

    def ledger(self) -> tuple[int, int]:
        with session_for(self.engine) as s:
            return s.exec(select(func.count(LedgerEntry.id), func.coalesce(func.sum(LedgerEntry.amount), 0))).one()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed(request, tmp_path_factory):
    """The fuzz target on SQLite, and on PostgreSQL where TEST_DATABASE_URL is set (CI)."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_path}/fuzz.db"
    with contextlib.ExitStack() as stack:
        yield Fuzzed(tmp_path, stack, url)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_surface(case, fuzzed):
    before = fuzzed.ledger()
    response = case.call(base_url=fuzzed.base_url, headers={"Authorization": f"Bearer {fuzzed.key}"}, timeout=15)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}
        error = body["error"]
        assert error["code"] == error["type"] and error["code"] in CODES
        assert CODES[error["code"]][0] == response.status_code or error["code"] == "provider_error"
        assert fuzzed.ledger() == before, "a rejected request changed the ledger"
    assert response.headers["x-request-id"]


def test_fuzz_target_really_charges_an_accepted_request(fuzzed):
    # The ledger check above would be vacuous if nothing could ever be charged.
    before = fuzzed.ledger()
    r = httpx.post(
        fuzzed.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {fuzzed.key}"},
        json={"model": "openai/gpt-5", "messages": [{"role": "user", "content": "hi"}]},
        timeout=15,
    )
    assert r.status_code == 200
    assert fuzzed.ledger() == (before[0] + 1, before[1] - 3 * MICRO)

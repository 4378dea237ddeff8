"""An image submission keeps the key's controls too: its budget (the task's debit is the
key's), its model list, and a failed task gives its charge back to the key's spend."""

from __future__ import annotations

from sqlmodel import select

from store import keys
from store.db import session_for
from store.models import ApiKey, ImageTask
from store.money import MICRO

from ..conftest import TEST_SECRET
from ..factories import credits_of, make_user
from . import image_fixtures
from .test_images import MODEL, submit

fresh_upstream = image_fixtures.fresh_upstream
settings = image_fixtures.settings
upstream = image_fixtures.upstream


def key_with(engine, user, **controls) -> tuple[int, str]:
    with session_for(engine) as s:
        issued = keys.issue_key(
            s,
            secret_key=TEST_SECRET,
            user_id=user.id,
            name="images",
            rate_limit_per_minute=0,
            controls=keys.KeyControls(**controls),
        )
    return issued.key.id, issued.secret


def spent(engine, key_id) -> int:
    with session_for(engine) as s:
        return s.exec(select(ApiKey).where(ApiKey.id == key_id)).one().budget_spent


async def test_an_image_beyond_the_key_budget_is_refused_before_the_provider(client, engine, upstream):
    user = make_user(engine, credits=100)
    key_id, secret = key_with(engine, user, budget=15 * MICRO)  # one 10-credit image, not two
    assert (await submit(client, secret)).status_code == 200
    refused = await submit(client, secret)
    assert (refused.status_code, refused.json()["error"]["code"]) == (402, "key_budget_exceeded")
    assert upstream.count("submit") == 1
    assert spent(engine, key_id) == 10 * MICRO and credits_of(engine, user) == 90
    with session_for(engine) as s:
        assert len(s.exec(select(ImageTask)).all()) == 1


async def test_an_image_model_off_the_list_is_not_available(client, engine, upstream):
    user = make_user(engine, credits=100)
    _, secret = key_with(engine, user, models=("openai/gpt-5",))
    refused = await submit(client, secret)
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "model_not_available")
    assert upstream.count("submit") == 0 and credits_of(engine, user) == 100


async def test_a_failed_image_gives_its_charge_back_to_the_key(client, engine, upstream):
    upstream.scenario.submit_status = 500  # the provider refuses the submission: refunded at once
    user = make_user(engine, credits=100)
    key_id, secret = key_with(engine, user, budget=50 * MICRO, budget_period="day")
    answer = await submit(client, secret, {"model": MODEL, "prompt": "x", "n": 2})
    assert (answer.status_code, answer.json()["error"]["code"]) == (502, "provider_error")
    assert spent(engine, key_id) == 0 and credits_of(engine, user) == 100
    upstream.scenario.submit_status = 201
    assert (await submit(client, secret, {"model": MODEL, "prompt": "y", "n": 4})).status_code == 200
    assert (await submit(client, secret, {"model": MODEL, "prompt": "z"})).status_code == 200
    assert spent(engine, key_id) == 50 * MICRO  # the whole budget was there again

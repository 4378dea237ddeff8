"""An image is priced by its resolution tier (issue 15: a 4K image is not a 1K price): the
entry's price per tier, else its 1K price times the tier's pixels over 1K's."""

from __future__ import annotations

import pytest

from store import pricing, registry
from store.db import session_for
from store.errors import InvalidInput
from store.models import CLEAR
from store.money import MICRO

from ..factories import auth, credits_of
from . import image_fixtures

caller = image_fixtures.caller
fresh_upstream = image_fixtures.fresh_upstream
settings = image_fixtures.settings
upstream = image_fixtures.upstream

MODEL = "google/nano-banana-pro"  # seeded: 10 credits at 1K and 2K, 20 at 4K (Replicate's ratio)


async def submit(client, key, size: str, n: int = 1):
    return await client.post(
        "/api/v1/images/generations",
        headers=auth(key),
        json={"model": MODEL, "prompt": "a robot", "size": size, "n": n},
    )


@pytest.mark.parametrize(("size", "n", "charged"), [("1024x1024", 1, 10), ("2048x1152", 1, 10), ("4096x4096", 2, 40)])
async def test_each_tier_is_charged_its_seeded_price(client, engine, caller, upstream, size, n, charged):
    user, key = caller
    response = await submit(client, key, size, n)
    assert response.status_code == 200, response.text
    assert credits_of(engine, user) == 100 - charged
    sent = upstream.bodies[0]["input"]
    assert sent["resolution"] == pricing.resolution_of(size)


async def test_a_tier_without_its_own_price_costs_its_pixels_over_1k(client, engine, caller, upstream):
    user, key = caller
    with session_for(engine) as s:
        registry.set_model(s, model_id=MODEL, actor="test", resolution_prices=CLEAR)
    assert (await submit(client, key, "2048x2048")).status_code == 200
    assert credits_of(engine, user) == 100 - 40  # 10 x 4 (2K has 4 times 1K's pixels)
    assert (await submit(client, key, "4096x4096")).status_code == 402  # 10 x 16 = 160 > 60 left
    assert credits_of(engine, user) == 60


async def test_models_show_the_price_of_each_tier(client, caller):
    _, key = caller
    response = await client.get(f"/api/v1/models/{MODEL}", headers=auth(key))
    assert response.json()["pricing"]["resolutions"] == {"1K": 10, "2K": 10, "4K": 20}


@pytest.mark.parametrize(
    "prices",
    [{"8K": MICRO}, {"4K": -1}, {"4K": "20"}, {}, ["4K"]],
    ids=["unknown tier", "negative", "not micro-credits", "empty", "not a map"],
)
def test_bad_resolution_prices_are_refused_and_change_nothing(engine, prices):
    with session_for(engine) as s:
        with pytest.raises(InvalidInput):
            registry.set_model(s, model_id=MODEL, actor="test", resolution_prices=prices)
        assert registry.get_model(s, model_id=MODEL).resolution_prices == {"2K": 10 * MICRO, "4K": 20 * MICRO}
    with session_for(engine) as s:
        with pytest.raises(InvalidInput, match="only image models have resolution prices"):
            registry.set_model(s, model_id="openai/gpt-5", actor="test", resolution_prices={"4K": MICRO})

"""The Models form's bounds and cache prices (SPEC, "Bounds" and "Prices for cached
prompts"): context length, a flat price's max prompt tokens, cache read and write prices,
saved through store.registry.set_model (an empty optional field is unset), shown in the
table and the audit, refused with a message that changes nothing."""

from __future__ import annotations

import pytest

from dashboard.pages.admin_models import ModelsAdminState, typical_call
from store import registry
from store.db import session_for

from .conftest import cookie_for, state_for, toast_says
from .test_states import MODEL_FORM, snapshot

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

# openai/gpt-5-mini as the seed ships it: per_token, 25 in / 200 out per 1M, cache reads 2.5,
# a fee of 1, 400,000 tokens of context.
TOKEN_FORM = {
    **MODEL_FORM,
    "pricing": "per_token",
    "credit_cost": "1",
    "prompt_price": "25",
    "completion_price": "200",
    "markup": "1",
    "max_output_tokens": "16384",
}


def entry(engine, model_id: str = "openai/gpt-5-mini"):
    with session_for(engine) as s:
        return registry.get_model(s, model_id=model_id)


async def admin_tab(engine, admin, model_id: str = "openai/gpt-5-mini") -> ModelsAdminState:
    state = state_for(ModelsAdminState, cookie=cookie_for(engine, admin), path="/admin/models")
    await state.load()
    await state.start_edit(model_id)
    return state


@both_databases
async def test_the_form_opens_with_the_bounds_and_cache_prices_and_the_table_shows_the_context(admin, engine):
    state = await admin_tab(engine, admin)
    f = state.form
    assert (f.context_length, f.max_prompt_tokens, f.cache_read_price, f.cache_write_price) == ("400000", "", "2.5", "")
    assert {k: state.draft[k] for k in ("cache_read_price", "cache_write_price", "max_prompt_tokens")} == {
        "cache_read_price": "2.5",
        "cache_write_price": "",
        "max_prompt_tokens": "",
    }
    rows = {m.id: m for m in state.models}
    assert rows["openai/gpt-5-mini"].context == "400,000"
    assert rows["openai/text-embedding-3-small"].context == "8,192"
    # the price summary says what a cached token costs: read as set, write at the prompt price
    assert rows["openai/gpt-5-mini"].price == "1 + 25 in / 200 out, cached 2.5 read / 25 write per 1M"
    assert rows["openai/text-embedding-3-small"].price == "2 in / 0 out per 1M"


@both_databases
async def test_an_admin_sets_context_length_and_cache_prices_and_unsets_them_again(admin, engine):
    state = await admin_tab(engine, admin)
    form = {**TOKEN_FORM, "context_length": "1,000,000", "cache_read_price": "0.125", "cache_write_price": "31.25"}
    assert toast_says(await state.save_model(form), "Saved") and state.error == ""
    saved = entry(engine)
    assert (saved.context_length, saved.cache_read_price, saved.cache_write_price) == (1_000_000, 125_000, 31_250_000)
    assert set(state.changes[0].change.split("; ")) == {
        "context length: 400000 → 1000000",
        "cache read price: 2.5 → 0.125",
        "cache write price: prompt price → 31.25",
        "capabilities: chat → chat, reasoning",
    }
    [row] = [m for m in state.models if m.id == "openai/gpt-5-mini"]
    assert (row.context, row.cache_read_price, row.cache_write_price) == ("1,000,000", "0.125", "31.25")
    assert row.price == "1 + 25 in / 200 out, cached 0.125 read / 31.25 write per 1M"

    await state.start_edit("openai/gpt-5-mini")  # the form opens with what was saved
    assert (state.form.context_length, state.form.cache_read_price) == ("1000000", "0.125")
    await state.save_model({**form, "cache_read_price": "", "cache_write_price": "  "})  # empty: the prompt price
    saved = entry(engine)
    assert (saved.cache_read_price, saved.cache_write_price) == (None, None)
    assert set(state.changes[0].change.split("; ")) == {
        "cache read price: 0.125 → prompt price",
        "cache write price: 31.25 → prompt price",
    }
    [row] = [m for m in state.models if m.id == "openai/gpt-5-mini"]
    assert row.price == "1 + 25 in / 200 out per 1M"


@both_databases
async def test_a_flat_price_covers_prompts_up_to_max_prompt_tokens(admin, engine):
    state = await admin_tab(engine, admin)
    state.set_draft("pricing", "per_request")
    state.set_draft("max_prompt_tokens", "8,000")
    assert state.preview == (
        "Every call costs 1 credit (× n when a call asks for n images or choices); "
        "it covers prompts of up to 8,000 tokens, and a longer one is refused."
    )
    flat = {**MODEL_FORM, "pricing": "per_request", "credit_cost": "1", "max_prompt_tokens": "8,000"}
    assert toast_says(await state.save_model(flat), "Saved")
    assert (entry(engine).pricing, entry(engine).max_prompt_tokens) == ("per_request", 8_000)
    [row] = [m for m in state.models if m.id == "openai/gpt-5-mini"]
    assert (row.max_prompt_tokens, row.price) == ("8000", "1 per request, prompts up to 8,000 tokens")
    assert "max prompt tokens: any → 8000" in state.changes[0].change

    await state.save_model({**flat, "max_prompt_tokens": ""})  # empty: any prompt
    assert entry(engine).max_prompt_tokens is None
    assert state.changes[0].change == "max prompt tokens: 8000 → any"


async def test_a_form_without_the_new_fields_leaves_them_as_they_are(admin, engine):
    """An older tab's form (or one that posts only some fields) changes nothing it does not send."""
    state = await admin_tab(engine, admin)
    await state.save_model({**TOKEN_FORM, "credit_cost": "2"})
    saved = entry(engine)
    assert (saved.credit_cost, saved.context_length, saved.cache_read_price) == (2_000_000, 400_000, 2_500_000)


@both_databases
@pytest.mark.parametrize(
    "change, message",
    [
        ({"context_length": "0"}, "Context length must be a whole number from 1 to 100,000,000."),
        ({"context_length": "100000001"}, "Context length must be a whole number from 1 to 100,000,000."),
        ({"context_length": ""}, "Context length must be a whole number from 1 to 100,000,000."),
        ({"context_length": "128k"}, "Context length must be a whole number from 1 to 100,000,000."),
        ({"context_length": "9" * 5000}, "Context length must be a whole number from 1 to 100,000,000."),
        ({"max_prompt_tokens": "0"}, "Max prompt tokens must be a whole number from 1 to 100,000,000."),
        ({"max_prompt_tokens": "-5"}, "Max prompt tokens must be a whole number from 1 to 100,000,000."),
        ({"max_prompt_tokens": "1.5"}, "Max prompt tokens must be a whole number from 1 to 100,000,000."),
        ({"cache_read_price": "-1"}, "Cache read price must be from 0 to 1000000 credits."),
        ({"cache_read_price": "cheap"}, "Cache read price must be a number such as 2.5."),
        ({"cache_write_price": "0.0000001"}, "Cache write price has more than 6 decimal places."),
        ({"cache_write_price": "1000001"}, "Cache write price must be from 0 to 1000000 credits."),
        ({"cache_write_price": "NaN"}, "Cache write price must be a finite number."),
        ({"max_output_tokens": "9" * 5000}, "Max output tokens must be a whole number from 1 to 2,000,000."),
    ],
)
async def test_a_bad_bound_or_cache_price_says_why_and_changes_nothing(change, message, admin, engine):
    before = snapshot(engine)
    state = await admin_tab(engine, admin)
    await state.save_model({**TOKEN_FORM, "context_length": "400000", **change})
    assert (state.error, state.form_open) == (message, True)
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    "draft, preview",
    [
        # a typical call reads nothing from a cache: its cost is the plain prompt price's
        (
            {"pricing": "per_token", "cache_read_price": "0.1", "cache_write_price": "40"},
            "A typical call (1,000 prompt + 500 completion tokens) costs 0.00725 credits.",
        ),
        (
            {"pricing": "per_token", "cache_read_price": "-1"},
            "No preview: cache read price must be from 0 to 1000000 credits.",
        ),
        (
            {"pricing": "per_token", "cache_write_price": "lots"},
            "No preview: cache write price must be a number such as 2.5.",
        ),
        # hidden by a flat price, but still saved as typed: saving would refuse it, so no price
        ({"cache_read_price": "-1"}, "No preview: cache read price must be from 0 to 1000000 credits."),
        ({"max_prompt_tokens": "0"}, "No preview: max prompt tokens must be a whole number from 1 to 100,000,000."),
        ({"max_prompt_tokens": "lots"}, "No preview: max prompt tokens must be a whole number from 1 to 100,000,000."),
        (
            {"max_prompt_tokens": "32000"},
            "Every call costs 2 credits (× n when a call asks for n images or choices); "
            "it covers prompts of up to 32,000 tokens, and a longer one is refused.",
        ),
        (
            {"pricing": "per_token", "max_prompt_tokens": "32000"},
            "A typical call (1,000 prompt + 500 completion tokens) costs 0.00725 credits.",
        ),
    ],
)
def test_the_preview_with_cache_prices_and_a_prompt_bound(draft, preview):
    base = {
        "pricing": "per_request",
        "credit_cost": "2",
        "prompt_price": "1.25",
        "completion_price": "10",
        "markup": "1",
        "cache_read_price": "",
        "cache_write_price": "",
        "max_prompt_tokens": "",
    }
    # by tokens: 0.001 + 1,000 × 1.25 / 1M + 500 × 10 / 1M = 0.00725
    if draft.get("pricing") == "per_token":
        base["credit_cost"] = "0.001"
    assert typical_call({**base, **draft}) == preview

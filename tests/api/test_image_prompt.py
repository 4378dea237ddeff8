"""An image prompt with a control character is a 400, on every database (PostgreSQL
cannot store NUL in text: it was a plain-text 500)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from store.db import session_for
from store.models import ImageTask

from ..factories import auth, make_key, make_user
from .test_errors import assert_error

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@BOTH
@pytest.mark.parametrize("prompt", ["a cat\u0000", "\u0000", "a \x1b[31mred\x1b[0m cat", "bell\x07", "del\x7f"])
async def test_prompt_with_a_control_character_is_400(client, engine, prompt):
    user = make_user(engine, credits=100)
    r = await client.post(
        "/api/v1/images/generations",
        headers=auth(make_key(engine, user)),
        json={"model": "google/nano-banana-pro", "prompt": prompt},
    )
    assert_error(r, 400, "invalid_request")
    assert r.json()["error"]["message"] == "`prompt` must not contain control characters other than \\n, \\r and \\t"
    with session_for(engine) as s:
        assert list(s.exec(select(ImageTask))) == []


def test_newlines_and_tabs_are_kept():
    from api.schemas import ImageGenerationRequest, parse

    prompt = "a cat\r\nin a hat\tat noon"
    assert parse(ImageGenerationRequest, {"model": "google/nano-banana-pro", "prompt": prompt}).prompt == prompt

"""The fixtures the image tests share (import them into a test module to use them there):
the fake Replicate and OpenRouter on a real socket for the module, reset before each test,
the settings that point the pipeline at it, and a caller with 100 credits and a key."""

from __future__ import annotations

import pytest

from ..factories import make_key, make_user
from .fake_replicate import FakeUpstream, pipeline_settings


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def fresh_upstream(upstream):
    upstream.reset()


@pytest.fixture
def settings(database_url, tmp_path, upstream):
    return pipeline_settings(database_url, tmp_path, upstream)


@pytest.fixture
def caller(engine):
    user = make_user(engine, credits=100)
    return user, make_key(engine, user)

"""Shared fixtures: a migrated database per test (SQLite, or PostgreSQL where
TEST_DATABASE_URL is set), settings that read no environment, and an app client."""

from __future__ import annotations

import os

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from store.db import get_engine, session_for
from store.migrate import migrate
from store.settings import Settings

TEST_SECRET = "test-secret-key-0123456789abcdef"
UPSTREAM = "https://upstream.test/api/v1"
PG_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")


def require(url: str | None, name: str) -> str:
    """Skip where a service is not configured; in CI (which sets both) a missing one fails."""
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{name} must be set in CI")
    pytest.skip(f"{name} not set")


@pytest.fixture(scope="session")
def postgres_url():
    """A database of this test process's own on the TEST_DATABASE_URL server, dropped at the end,
    so that two suites running at once on one server cannot empty each other's tables."""
    base = sa.engine.make_url(require(PG_URL, "TEST_DATABASE_URL"))
    name = f"{base.database}_{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    yield url
    get_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reset_postgres(url: str) -> None:
    """Empty every table (keeping the schema) and re-seed the registry."""
    migrate(url)
    engine = get_engine(url)
    tables = ", ".join(t.name for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    migrate(url)


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path) -> str:
    """A migrated, seeded database. Parametrize with "postgres" to run on PostgreSQL too."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        reset_postgres(url)
        return url
    url = f"sqlite:///{tmp_path}/test.db"
    migrate(url)
    return url


@pytest.fixture
def engine(database_url):
    return get_engine(database_url)


@pytest.fixture
def session(engine):
    with session_for(engine) as s:
        yield s


def make_settings(database_url: str, tmp_path, **overrides) -> Settings:
    values = dict(
        database_url=database_url,
        secret_key=TEST_SECRET,
        openrouter_api_key="test-openrouter-key",
        openrouter_base_url=UPSTREAM,
        replicate_api_token="test-replicate-token",
        replicate_base_url="https://replicate.test/v1",
        media_dir=tmp_path / "media",
        upstream_timeout_s=2.0,
        upstream_retries=0,
        log_flush_interval_s=0.05,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def chat_upstream():
    """A scripted chat upstream over real sockets (tests/fakes/scripted.py); `settings` points at it."""
    from .fakes.scripted import ScriptedUpstream

    with ScriptedUpstream() as scripted:
        yield scripted


@pytest.fixture
def settings(database_url, tmp_path, chat_upstream) -> Settings:
    return make_settings(database_url, tmp_path, openrouter_base_url=chat_upstream.base_url)


@pytest.fixture
async def app(settings):
    from api.app import create_app

    application = create_app(settings)
    async with application.state.runtime.running():
        yield application


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as c:
        yield c


def flush_logs(app) -> None:
    app.state.runtime.logs.flush()

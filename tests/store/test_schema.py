"""The migrations build exactly the schema the SQLModel tables declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import store.models  # noqa: F401  (the tables)


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_migrations_match_the_models(engine):
    with engine.connect() as conn:
        # SQLite's column types are affinities (INTEGER holds 64 bits): compare them elsewhere only
        context = MigrationContext.configure(conn, opts={"compare_type": engine.dialect.name != "sqlite"})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []

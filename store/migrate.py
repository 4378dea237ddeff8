"""Bring a database to the newest schema and seed the default model registry."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command

from . import registry
from .db import get_engine, session_for

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str) -> list[str]:
    """Upgrade to head, then add any missing default models. Returns the ids added."""
    command.upgrade(alembic_config(database_url), "head")
    with session_for(get_engine(database_url)) as session:
        return registry.seed_default_registry(session)

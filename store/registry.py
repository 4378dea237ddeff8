"""The model registry: which models are public, what each costs, and how to reach it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from . import events, pricing
from .db import reads
from .errors import InvalidInput, NotFound
from .models import CLEAR, ModelAudit, ModelEntry, utcnow
from .money import MICRO, format_credits, json_credits, parse_credits

CATEGORIES = ("chat", "image", "embedding")
# Categories whose calls report token usage, so they may be priced by tokens.
TOKEN_PRICED = ("chat", "embedding")
PROVIDERS = ("openrouter", "replicate")
DEFAULT_REGISTRY = Path(__file__).with_name("default_models.json")
_TEXT_FIELDS = {"display_name": 200, "provider": 50, "upstream_id": 200, "owned_by": 100}
MAX_COST = 1_000_000 * MICRO  # micro-credits, for the fee and for each per-1M-token price
MAX_MARKUP = 100 * MICRO
MAX_OUTPUT_TOKENS = 2_000_000
MAX_CONTEXT_LENGTH = 100_000_000
_MONEY_FIELDS = {
    "credit_cost": "credit cost",
    "prompt_price": "prompt price",
    "completion_price": "completion price",
    "cache_read_price": "cache read price",
    "cache_write_price": "cache write price",
}
_TOKEN_FIELDS = {
    "max_output_tokens": ("max output tokens", MAX_OUTPUT_TOKENS),
    "context_length": ("context length", MAX_CONTEXT_LENGTH),
    "max_prompt_tokens": ("max prompt tokens", MAX_CONTEXT_LENGTH),
}
# Fields that may be unset again (given as CLEAR): a cache price then follows the prompt
# price, and a flat price covers any prompt.
NULLABLE = frozenset({"cache_read_price", "cache_write_price", "max_prompt_tokens", "resolution_prices"})


def _validated(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if value is CLEAR:
            if name not in NULLABLE:
                raise InvalidInput(f"{name.replace('_', ' ')} cannot be unset")
            out[name] = None
            continue
        if name in _TEXT_FIELDS:
            value = str(value).strip()
            if not value or len(value) > _TEXT_FIELDS[name]:
                raise InvalidInput(f"{name} must be 1 to {_TEXT_FIELDS[name]} characters")
        elif name in _MONEY_FIELDS:  # micro-credits
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COST:
                raise InvalidInput(f"{_MONEY_FIELDS[name]} must be from 0 to {format_credits(MAX_COST)} credits")
        elif name == "markup":  # millionths
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_MARKUP:
                raise InvalidInput(f"markup must be above 0 and at most {format_credits(MAX_MARKUP)}")
        elif name in _TOKEN_FIELDS:
            what, most = _TOKEN_FIELDS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise InvalidInput(f"{what} must be a whole number from 1 to {most:,}")
        elif name == "resolution_prices":
            value = _resolution_prices(value)
        elif name == "pricing":
            if value not in pricing.MODES:
                raise InvalidInput(f"pricing must be one of {', '.join(pricing.MODES)}")
        elif name == "category":
            if value not in CATEGORIES:
                raise InvalidInput(f"category must be one of {', '.join(CATEGORIES)}")
        elif name == "enabled":
            if not isinstance(value, bool):
                raise InvalidInput("enabled must be true or false")
        elif name == "capabilities":
            if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
                raise InvalidInput("capabilities must be a list of names")
            value = [c.strip() for c in value]
        else:
            raise InvalidInput(f"unknown model field {name!r}")
        if name == "provider" and value not in PROVIDERS:
            raise InvalidInput(f"provider must be one of {', '.join(PROVIDERS)}")
        out[name] = value
    return out


def _resolution_prices(value: Any) -> dict[str, int]:
    """{"2K": micro-credits, "4K": …}: a price per image for each tier above 1K it names."""
    tiers = pricing.RESOLUTIONS[1:]
    if not isinstance(value, dict) or not value or any(tier not in tiers for tier in value):
        raise InvalidInput(f"resolution prices name the tiers {' and '.join(tiers)}")
    for tier, price in value.items():
        if isinstance(price, bool) or not isinstance(price, int) or not 0 <= price <= MAX_COST:
            raise InvalidInput(f"the {tier} price must be from 0 to {format_credits(MAX_COST)} credits")
    return {tier: value[tier] for tier in tiers if tier in value}


def validate_model_id(model_id: str) -> str:
    model_id = (model_id or "").strip()
    if not model_id or len(model_id) > 200 or any(c.isspace() for c in model_id):
        raise InvalidInput("model id must be 1 to 200 characters without spaces")
    return model_id


# Not a change anyone made: every save moves it.
UNAUDITED = frozenset({"updated_at"})


def set_model(
    session: Session, *, model_id: str, actor: str, actor_user_id: int | None = None, **fields: Any
) -> tuple[ModelEntry, dict | None]:
    """Create or edit a registry entry, recording who did it (`actor`: an email, "cli",
    "seed") with the entry before and after, in the same transaction. A save that
    changes nothing writes nothing. Returns the entry and its state before (None if new).

    A new entry needs a category and a provider; the rest defaults from the id.
    """
    model_id = validate_model_id(model_id)
    changes = _validated(fields)
    entry = session.get(ModelEntry, model_id)
    before = entry.model_dump(mode="json") if entry is not None else None
    if entry is None:
        if "category" not in changes or "provider" not in changes:
            raise InvalidInput("a new model needs a category and a provider")
        category, provider = changes.pop("category"), changes.pop("provider")
        entry = ModelEntry(
            id=model_id,
            category=category,
            provider=provider,
            display_name=changes.pop("display_name", model_id),
            upstream_id=changes.pop("upstream_id", model_id),
            owned_by=changes.pop("owned_by", provider),
            capabilities=changes.pop("capabilities", [category]),
        )
    for name, value in changes.items():
        setattr(entry, name, value)
    if entry.resolution_prices and entry.category != "image":
        raise InvalidInput("only image models have resolution prices")
    if entry.category not in TOKEN_PRICED and entry.pricing != pricing.PER_REQUEST:
        raise InvalidInput("only chat and embedding models can be priced by tokens; image models are per_request")
    after = entry.model_dump(mode="json")
    if before is not None and all(before[k] == v for k, v in after.items() if k not in UNAUDITED):
        session.rollback()
        unchanged = session.get(ModelEntry, model_id)  # as stored: the rollback dropped the edits
        assert unchanged is not None  # it existed a moment ago (`before`)
        return unchanged, before
    entry.updated_at = utcnow()
    session.add(entry)
    session.add(
        ModelAudit(
            model_id=model_id,
            actor_user_id=actor_user_id,
            actor=actor[:254],
            before=before,
            after=entry.model_dump(mode="json"),
        )
    )
    session.commit()
    session.refresh(entry)
    events.publish(events.REGISTRY_CHANGED, entry.id)
    return entry, before


@reads
def get_model(session: Session, *, model_id: str) -> ModelEntry:
    entry = session.get(ModelEntry, model_id)
    if entry is None:
        raise NotFound(f"no model {model_id!r}")
    return entry


@reads
def list_models(session: Session, *, enabled_only: bool = False) -> list[ModelEntry]:
    query = select(ModelEntry).order_by(col(ModelEntry.category), col(ModelEntry.id))
    if enabled_only:
        query = query.where(col(ModelEntry.enabled) == True)  # noqa: E712
    return list(session.exec(query))


def seed_default_registry(session: Session, path: Path = DEFAULT_REGISTRY) -> list[str]:
    """Add the default entries that are missing, and bring up to date the ones nobody but
    the seed ever changed (their audit rows are all the seed's); never overwrite an admin's
    edits. The file's prices are in credits (decimals allowed), as a person writes them.
    Returns the ids added."""
    added = []
    for item in json.loads(path.read_text()):
        item = dict(item)
        model_id = item.pop("id")
        for name in _MONEY_FIELDS:
            if name in item:
                item[name] = parse_credits(str(item[name]), what=name)
        if "resolution_prices" in item:
            item["resolution_prices"] = {
                tier: parse_credits(str(price), what=f"{tier} price")
                for tier, price in item["resolution_prices"].items()
            }
        if session.get(ModelEntry, model_id) is None:
            set_model(session, model_id=model_id, actor="seed", **item)
            added.append(model_id)
        elif _only_seeded(session, model_id):
            set_model(session, model_id=model_id, actor="seed", **item)
        session.rollback()  # end the reads of this entry before the next
    return added


def _only_seeded(session: Session, model_id: str) -> bool:
    actors = session.exec(select(ModelAudit.actor).where(col(ModelAudit.model_id) == model_id)).all()
    return bool(actors) and all(actor == "seed" for actor in actors)


_TIER_SIZES = {"1K": "1024x1024", "2K": "2048x2048", "4K": "4096x4096"}


def public_view(entry: ModelEntry) -> dict[str, Any]:
    """The entry as `GET /api/v1/models` shows it."""
    view: dict[str, Any] = {
        "id": entry.id,
        "object": "model",
        "created": int(entry.created_at.timestamp()),
        "owned_by": entry.owned_by,
        "display_name": entry.display_name,
        "category": entry.category,
        "capabilities": list(entry.capabilities),
        "credit_cost": json_credits(entry.credit_cost),
        "context_length": entry.context_length,
        "pricing": {
            "mode": entry.pricing,
            "request": json_credits(entry.credit_cost),
            "prompt": json_credits(entry.prompt_price),  # per 1M tokens
            "completion": json_credits(entry.completion_price),
            "cache_read": json_credits(_or(entry.cache_read_price, entry.prompt_price)),
            "cache_write": json_credits(_or(entry.cache_write_price, entry.prompt_price)),
        },
    }
    if entry.category == "image":  # what one image costs at each resolution tier
        view["pricing"]["resolutions"] = {
            tier: json_credits(pricing.image_unit_cost(entry, size)) for tier, size in _TIER_SIZES.items()
        }
    return view


def _or(value: int | None, default: int) -> int:
    return default if value is None else value

"""What a model call's body becomes before anything is held: a pure function of the bytes
read and a snapshot of the registry, so that it can run anywhere.

    prepare(endpoint, raw, entries, native)
                                      the body decoded and validated (its own codes), then
                                      kept in its own format for a provider that serves it
                                      (api.native_policy) or translated to chat completions,
                                      the model looked up (404 model_not_available), the
                                      request policy applied (api.chat_policy), the
                                      upstream body serialised and its prompt bound taken
                                      (store.pricing): a `Prepared`, or an ApiError

A small body is prepared inline; a big one (api.body.BIG_BODY_BYTES) in a worker process
(`Runtime.offload`): decoding and validating it holds the interpreter for a whole call
(orjson, pydantic-core), which in a thread would still stop the event loop for everyone
else. Nothing of the parsed body comes back but the bytes to send and a few numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from store.pricing import prompt_token_bound, prompt_token_estimate

from .body import decode_object
from .chat_policy import check_metadata, upstream_chat
from .errors import ApiError
from .native_policy import messages_body, responses_body
from .schemas import ChatCompletionRequest, EmbeddingRequest, MessagesRequest, ResponsesRequest, parse
from .serialise import serialise
from .translate import anthropic, responses

CHAT, RESPONSES, MESSAGES, EMBEDDINGS = "chat", "responses", "messages", "embeddings"
CATEGORY = {CHAT: "chat", RESPONSES: "chat", MESSAGES: "chat", EMBEDDINGS: "embedding"}


class Entry(Protocol):
    """What preparing reads of a registry entry (store.models.ModelEntry, or an EntryView)."""

    id: str
    category: str
    enabled: bool
    upstream_id: str
    max_output_tokens: int
    context_length: int


@dataclass(frozen=True, slots=True)
class EntryView:
    """An entry's fields that preparing reads, small enough to send to a worker process."""

    id: str
    category: str
    enabled: bool
    upstream_id: str
    max_output_tokens: int
    context_length: int

    @classmethod
    def of(cls, entry: Entry) -> EntryView:
        return cls(
            entry.id, entry.category, entry.enabled, entry.upstream_id, entry.max_output_tokens, entry.context_length
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    model_id: str  # the public id the caller named
    stream: bool
    content: bytes  # the serialised upstream body
    prompt_bound: int  # store.pricing.prompt_token_bound of it
    max_tokens: int = 0  # the effective completion cap of each choice
    n: int = 1
    extra_completion: int = 0  # a predicted output's tokens
    client_wants_usage: bool = False  # a chat stream's usage chunk reaches only a caller who asked
    native: bool = False  # sent in its own format (Messages, Responses) to a provider that speaks it
    path: str | None = None  # where under the provider's base URL (None: chat completions)
    echo: dict[str, Any] | None = None  # what a Responses answer repeats of the request
    options: dict[str, Any] = field(default_factory=dict)  # per endpoint (embeddings: encoding_format)


def prepare(endpoint: str, raw: bytes, entries: Mapping[str, Entry], native: frozenset[str] = frozenset()) -> Prepared:
    """`raw`, the body of a call to `endpoint`, made ready to send (see the module's docstring);
    sent natively when the provider serves that format (`native`), else as chat completions."""
    data = decode_object(raw)
    if endpoint == EMBEDDINGS:
        return _embeddings(data, entries)
    if endpoint in native:
        return _native(endpoint, data, entries)
    if endpoint == CHAT:
        parse(ChatCompletionRequest, data)
        body = data
    elif endpoint == RESPONSES:
        parse(ResponsesRequest, data)
        check_metadata(data.get("metadata"))
        body = responses.chat_body(data)
    else:
        parse(MessagesRequest, data)
        body = anthropic.chat_body(data)
    entry = _entry(entries, body["model"], "chat")
    plan = upstream_chat(body, upstream_id=entry.upstream_id, max_output_tokens=entry.max_output_tokens)
    content = serialise(plan.body)
    echo = None
    if endpoint == RESPONSES:
        # What the answer echoes must be echoable before anything is held: a body that
        # cannot be rendered back is refused, not refunded after the call.
        echo = responses.shell(data, response_id="", model_id=entry.id, created=0, max_tokens=plan.max_tokens)
        serialise(echo)
    return Prepared(
        model_id=entry.id,
        stream=bool(plan.body.get("stream")),
        content=content,
        prompt_bound=prompt_token_bound(content, plan.body, context_length=entry.context_length),
        max_tokens=plan.max_tokens,
        n=plan.n,
        extra_completion=plan.prediction_tokens,
        client_wants_usage=plan.client_wants_usage,
        echo=echo,
    )


@dataclass(frozen=True, slots=True)
class Count:
    """A `count_tokens` request made ready: forwarded as it is, or counted here."""

    model_id: str
    content: bytes  # the body to forward (the registry's model id)
    estimate: int  # store.pricing.prompt_token_estimate of its chat translation


COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking")


def count_tokens(raw: bytes, entries: Mapping[str, Entry]) -> Count:
    """A Messages `count_tokens` body: what to forward to a provider that counts, and the
    local estimate for one that cannot (api/translate/anthropic.py's chat body, estimated)."""
    data = decode_object(raw)
    parse(MessagesRequest, data)
    entry = _entry(entries, data["model"], "chat")
    forward = {name: data[name] for name in COUNTED if name in data}
    forward["model"] = entry.upstream_id
    chat = anthropic.chat_body({**data, "max_tokens": 1})
    content = serialise(chat)
    estimate = prompt_token_estimate(content, chat, context_length=entry.context_length)
    return Count(model_id=entry.id, content=serialise(forward), estimate=estimate)


def _native(endpoint: str, data: dict[str, Any], entries: Mapping[str, Entry]) -> Prepared:
    """A Messages or Responses request in its own format (api.native_policy)."""
    if endpoint == MESSAGES:
        parse(MessagesRequest, data)
        entry = _entry(entries, data["model"], "chat")
        native = messages_body(data, upstream_id=entry.upstream_id, max_output_tokens=entry.max_output_tokens)
    else:
        parse(ResponsesRequest, data)
        entry = _entry(entries, data["model"], "chat")
        native = responses_body(data, upstream_id=entry.upstream_id, max_output_tokens=entry.max_output_tokens)
    content = serialise(native.body)
    return Prepared(
        model_id=entry.id,
        stream=bool(native.body.get("stream")),
        content=content,
        prompt_bound=prompt_token_bound(content, native.body, context_length=entry.context_length),
        max_tokens=native.max_tokens,
        native=True,
        path=f"/{endpoint}",
    )


def _entry(entries: Mapping[str, Entry], model_id: str, category: str) -> Entry:
    entry = entries.get(model_id)
    if entry is None or not entry.enabled or entry.category != category:
        refusal = ApiError("model_not_available")
        refusal.model = model_id[:200]
        raise refusal
    return entry


def _embeddings(data: dict[str, Any], entries: Mapping[str, Entry]) -> Prepared:
    request = parse(EmbeddingRequest, data)
    entry = _entry(entries, request.model or "", "embedding")
    body: dict[str, Any] = {"model": entry.upstream_id, "input": request.input}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    # What goes upstream: OpenAI's embedding parameters only, the registry's model id, and no
    # `encoding_format` (floats, the default everywhere). The body's bytes bound the prompt's
    # tokens (the JSON around each input covers a model's added special tokens).
    content = serialise(body)
    return Prepared(
        model_id=entry.id,
        stream=False,
        content=content,
        prompt_bound=prompt_token_bound(content, context_length=entry.context_length),
        options={"encoding_format": request.encoding_format or "float"},
    )


def views(entries: Mapping[str, Entry]) -> dict[str, EntryView]:
    return {model_id: EntryView.of(entry) for model_id, entry in entries.items()}

"""The request bodies the API accepts, as pydantic models.

Each is validated after the size-limited read (`api.deps`), and the OpenAPI document's
request bodies are generated from them (`request_body`). A missing or empty required
field answers its own code (`model_required`, `messages_required`, `prompt_required`);
any other problem is `invalid_request` naming the field. Types are strict (a boolean
is not a number, a string not an integer). Chat requests allow unknown fields here:
what goes upstream is decided by the request policy (`api.chat_policy`).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .errors import CODES, ApiError

MAX_INT32 = 2**31 - 1
MAX_PROMPT_CHARS = 32_000
MIN_SIDE, MAX_SIDE = 64, 8192
# Control characters other than \n \r \t: no prompt needs them, and PostgreSQL cannot store NUL.
_CONTROL = frozenset(chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F))


class _Body(BaseModel):
    model_config = ConfigDict(strict=True)

    model: str | None = Field(None, max_length=200, examples=["openai/gpt-5"])

    @model_validator(mode="after")
    def _model_given(self):
        if not self.model:
            raise PydanticCustomError("model_required", "Model is required")
        return self


class ChatCompletionRequest(_Body):
    """OpenAI's chat-completions request; fields not listed pass validation untouched."""

    model_config = ConfigDict(strict=True, extra="allow", json_schema_extra={"required": ["model", "messages"]})

    messages: list[dict[str, Any]] | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_INT32)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_INT32)
    n: int | None = Field(None, ge=1, le=128)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    tools: list[Any] | None = None
    stop: str | list[str] | None = None

    @model_validator(mode="after")
    def _messages_given(self):
        if not self.messages:
            raise PydanticCustomError("messages_required", "Messages are required")
        return self


class ImageGenerationRequest(_Body):
    """The seed's image request, plus `webhook_url` for a signed POST when the task ends."""

    model_config = ConfigDict(strict=True, json_schema_extra={"required": ["model", "prompt"]})

    prompt: str | None = Field(None, examples=["A cinematic photo of a robot reading API docs"])
    size: str | None = Field(None, pattern=r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$", examples=["1024x1024"])
    n: int = Field(1, ge=1, le=4)
    response_format: Literal["url", "b64_json"] | None = Field(
        None, description="`b64_json`: the images inline, in an answer that waited (`Prefer: wait=N`)"
    )
    webhook_url: str | None = Field(None, max_length=2000, description="receives a signed POST when the task ends")

    @field_validator("prompt")
    @classmethod
    def _clean_prompt(cls, prompt: str | None) -> str | None:
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"must be at most {MAX_PROMPT_CHARS} characters")
        if prompt is not None and not _CONTROL.isdisjoint(prompt):
            raise ValueError("must not contain control characters other than \\n, \\r and \\t")
        return prompt

    @field_validator("size")
    @classmethod
    def _sides(cls, size: str | None) -> str | None:
        if size is not None and not all(MIN_SIDE <= int(side) <= MAX_SIDE for side in size.split("x")):
            raise ValueError(f"must be WIDTHxHEIGHT, each {MIN_SIDE} to {MAX_SIDE}")
        return size

    @model_validator(mode="after")
    def _prompt_given(self):
        if self.prompt is None or not self.prompt.strip():
            raise PydanticCustomError("prompt_required", "Prompt is required")
        return self


MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit of inputs in one embeddings request


class EmbeddingRequest(_Body):
    """OpenAI's embeddings request: `input` a string, a list of strings, a token list, or a
    list of token lists."""

    model_config = ConfigDict(strict=True, json_schema_extra={"required": ["model", "input"]})

    input: str | list[str] | list[int] | list[list[int]] | None = Field(None, examples=["The food was delicious"])
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1, le=MAX_INT32)
    user: str | None = Field(None, max_length=256)

    @field_validator("input")
    @classmethod
    def _inputs(cls, value):
        if value is None:
            return value
        if isinstance(value, str):
            if not value:
                raise ValueError("must not be empty")
            return value
        if not value:
            raise ValueError("must not be empty")
        if len(value) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"must have at most {MAX_EMBEDDING_INPUTS} items")
        if any(not item for item in value if isinstance(item, (str, list))):
            raise ValueError("must not contain an empty string or list")
        if any(isinstance(item, int) and not 0 <= item <= MAX_INT32 for item in value) or any(
            isinstance(item, list) and not all(0 <= t <= MAX_INT32 for t in item) for item in value
        ):
            raise ValueError("token ids must be from 0 to 2147483647")
        return value

    @model_validator(mode="after")
    def _input_given(self):
        if self.input is None:
            # not a code of its own (CODES): answered as invalid_request with this message
            raise PydanticCustomError("input_missing", "`input` is required")
        return self


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: dict[str, Any]) -> M:
    """`data` as a `model`, or the ApiError a caller sees."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _api_error(exc) from None


def _api_error(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False, include_context=False)
    for error in errors:  # a missing field outranks a wrong one, as before
        if error["type"] in CODES:
            return ApiError(error["type"], error["msg"])  # "Input is required" for /responses
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "value_error":  # our own rules: "`prompt` must not contain …"
        return ApiError("invalid_request", f"`{where}` {first['msg'].removeprefix('Value error, ')}")
    return ApiError("invalid_request", f"`{where}`: {first['msg']}" if where else first["msg"])


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The route's `openapi_extra` request body, generated from `model`."""
    schema = orjson.loads(orjson.dumps(model.model_json_schema(ref_template="#/components/schemas/{model}")))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class ResponsesRequest(_Body):
    """OpenAI's Responses request (`POST /responses`). What of it goes upstream, translated
    to chat completions, and what is refused, is api.translate.responses's to say; fields
    not listed pass validation untouched."""

    model_config = ConfigDict(strict=True, extra="allow", json_schema_extra={"required": ["model", "input"]})

    input: str | list[dict[str, Any]] | None = Field(None, examples=["Say hello"])
    instructions: str | None = None
    stream: bool | None = None
    max_output_tokens: int | None = Field(None, ge=1, le=MAX_INT32)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    tools: list[Any] | None = None
    user: str | None = Field(None, max_length=256)

    @model_validator(mode="after")
    def _input_given(self):
        if not self.input:
            raise PydanticCustomError("messages_required", "Input is required")
        return self


class MessagesRequest(_Body):
    """Anthropic's Messages request (`POST /messages`), translated by api.translate.anthropic;
    `max_tokens` may be left out (the model's cap applies)."""

    model_config = ConfigDict(
        strict=True, extra="allow", json_schema_extra={"required": ["model", "messages", "max_tokens"]}
    )

    messages: list[dict[str, Any]] | None = None
    system: str | list[dict[str, Any]] | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_INT32)
    stream: bool | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0, le=MAX_INT32)
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None
    tools: list[Any] | None = None

    @model_validator(mode="after")
    def _messages_given(self):
        if not self.messages:
            raise PydanticCustomError("messages_required", "Messages are required")
        return self

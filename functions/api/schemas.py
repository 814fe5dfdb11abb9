"""Request bodies, validated with pydantic; any failure is an :class:`InvalidRequest` (400).

Unknown fields are ignored (OpenAI clients send many optional ones); the fields used here
are strict (a string is not a number). Error messages name the field and the rule, never
the value sent.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.api.errors import InvalidRequest

MODEL_ID: Final = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$"
MAX_MESSAGES: Final = 2048
MAX_EMBEDDING_INPUTS: Final = 2048

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class Message(_Body):
    role: Role
    content: str | list[TextPart] | None = None
    name: str | None = Field(default=None, max_length=256)

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Body):
    include_usage: bool = False


Stop = Annotated[str, Field(min_length=1, max_length=256)]


class ChatRequest(_Body):
    model: str = Field(pattern=MODEL_ID)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=1)
    stop: Stop | list[Stop] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @property
    def requested_max_tokens(self) -> int | None:
        """``max_tokens`` or ``max_completion_tokens`` (the smaller if both are sent)."""
        given = [v for v in (self.max_tokens, self.max_completion_tokens) if v is not None]
        return min(given) if given else None

    @property
    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class InputText(_Body):
    type: Literal["input_text", "output_text", "text"]
    text: str


class InputMessage(_Body):
    """An item of a Responses API ``input`` list (``type`` "message" or absent)."""

    type: Literal["message"] = "message"
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[InputText]

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ResponsesRequest(_Body):
    """``POST /v1/responses`` (OpenAI's Responses API): text in, text out."""

    model: str = Field(pattern=MODEL_ID)
    input: str | list[InputMessage] = Field(min_length=1)
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool = False
    user: str | None = Field(default=None, max_length=256)

    @field_validator("input")
    @classmethod
    def _few_items(cls, value: str | list[InputMessage]) -> str | list[InputMessage]:
        if isinstance(value, list) and len(value) > MAX_MESSAGES:
            raise ValueError(f"at most {MAX_MESSAGES} items")
        return value

    @property
    def messages(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.instructions:
            out.append(("system", self.instructions))
        if isinstance(self.input, str):
            out.append(("user", self.input))
        else:
            out += [(m.role, m.text) for m in self.input]
        return out


EmbeddingInput = Annotated[str, Field(max_length=32_768)]


class EmbeddingsRequest(_Body):
    """``POST /v1/embeddings``: text inputs only (token arrays are refused)."""

    model: str = Field(pattern=MODEL_ID)
    input: EmbeddingInput | list[EmbeddingInput] = Field(min_length=1)
    dimensions: int | None = Field(default=None, ge=1, le=4096)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = Field(default=None, max_length=256)

    @field_validator("input")
    @classmethod
    def _few_inputs(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"at most {MAX_EMBEDDING_INPUTS} inputs")
        return value

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ToolCall(_Body):
    """``POST /v1/tools/{name}/invoke``: ``{"arguments": {...}}`` (an object, or a JSON
    string holding one, as in OpenAI tool calls)."""

    arguments: dict[str, Any] | str = Field(default_factory=dict)

    @field_validator("arguments")
    @classmethod
    def _object(cls, value: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                raise ValueError("a JSON object (or a string holding one)") from None
            if not isinstance(parsed, dict):
                raise ValueError("a JSON object (or a string holding one)")
            return parsed
        return value

    @property
    def args(self) -> dict[str, Any]:
        return self.arguments if isinstance(self.arguments, dict) else {}


M = TypeVar("M", bound=BaseModel)


def _describe(exc: ValidationError) -> tuple[str, str | None]:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    if err.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None
    if err.get("type") in ("model_type", "model_attributes_type") and not loc:
        return "The request body must be a JSON object.", None
    msg = str(err.get("msg", "invalid"))
    return (f"Invalid value for '{loc}': {msg}." if loc else f"{msg}."), (loc or None)


def parse(model: type[M], body: str | bytes | None) -> M:
    """``body`` (the raw request body) as ``model``; :class:`InvalidRequest` otherwise."""
    if body is None or (isinstance(body, str | bytes) and not body.strip()):
        raise InvalidRequest("A JSON request body is required.")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        message, param = _describe(exc)
        raise InvalidRequest(message, param=param) from None


def parse_object(model: type[M], data: dict[str, Any]) -> M:
    """``data`` (already decoded JSON) as ``model``; :class:`InvalidRequest` otherwise."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        message, param = _describe(exc)
        raise InvalidRequest(message, param=param) from None


def check_param(name: str, value: str, pattern: str) -> str:
    if not re.fullmatch(pattern, value):
        raise InvalidRequest(f"Invalid value for '{name}'.", param=name)
    return value

"""The OpenAI wire format the server speaks: request schemas, response and chunk bodies, and
errors shaped as OpenAI clients expect them.

Invariants:
- Requests are validated here, before anything is queued: what the server cannot honour is a
  400 naming the field (n > 1, tools, logprobs, non-text content), never silently ignored.
  Fields that do not change the answer (user, metadata, presence_penalty, ...) are accepted
  and ignored, as clients send them by default.
- Every error body is {"error": {"message", "type", "param", "code"}}: the `openai` client
  raises NotFoundError / BadRequestError / ... from the status and shows the message.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ApiError(Exception):
    """An error answer: HTTP status plus the OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002  (the wire name)
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None, code=None
) -> dict[str, Any]:  # noqa: A002
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class _Lenient(BaseModel):
    # Unknown fields are ignored (clients add new optional ones all the time); the ones that
    # would change the answer are declared below and refused when set.
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: str
    text: str | None = None


class Message(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        bad = [p.type for p in self.content if p.type != "text"]
        if bad:
            raise ApiError(400, f"only text content is supported, got {bad[0]!r}", param="messages")
        return "".join(p.text or "" for p in self.content)


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Common(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(1, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool | int | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > 4 or any(not s or len(s) > 64 for s in stops)):
            raise ValueError("at most 4 stop sequences of 1 to 64 characters")
        return stops

    def check_supported(self) -> None:
        if (self.n or 1) != 1:
            raise ApiError(
                400, "n > 1 is not supported: send one request per completion", param="n"
            )
        if self.logprobs:
            raise ApiError(400, "logprobs are not supported", param="logprobs")

    def sampling(self) -> dict[str, Any]:
        """{} for greedy (the default, as AdapterFleet.generate), else the sampling settings."""
        if not self.temperature:
            return {}
        return {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}


class ChatRequest(_Common):
    messages: list[Message] = Field(min_length=1, max_length=1024)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def check_supported(self) -> None:
        super().check_supported()
        if self.tools or self.functions:
            raise ApiError(400, "tools and function calling are not supported", param="tools")
        if self.response_format and self.response_format.get("type") not in (None, "text"):
            raise ApiError(400, "only response_format text is supported", param="response_format")

    def wanted_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def chat(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(_Common):
    prompt: str | list[str]
    echo: bool | None = False
    suffix: str | None = None

    def check_supported(self) -> None:
        super().check_supported()
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ApiError(400, "send one prompt per request", param="prompt")
        if self.echo or self.suffix:
            raise ApiError(400, "echo and suffix are not supported", param="echo")

    def wanted_tokens(self) -> int | None:
        return self.max_tokens

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


# ---- responses ----


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_response(rid: str, model: str, fingerprint: str | None, result) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


def completion_response(rid: str, model: str, fingerprint: str | None, result) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": 0,
                "text": result.text,
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


def chunk(
    kind: str,
    rid: str,
    model: str,
    fingerprint: str | None,
    *,
    text: str | None = None,
    role: bool = False,
    finish: str | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One streamed event: chat.completion.chunk or text_completion."""
    body: dict[str, Any] = {
        "id": rid,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": fingerprint,
    }
    if usage_ is not None:
        body["choices"] = []
        body["usage"] = usage_
    elif kind == "chat":
        delta: dict[str, str] = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    else:
        body["choices"] = [
            {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        ]
    body["object"] = "chat.completion.chunk" if kind == "chat" else "text_completion"
    return body


def model_card(entry: dict[str, Any], created: int) -> dict[str, Any]:
    """A /v1/models entry; `version` and `commit` are ours, the rest OpenAI's."""
    return {"object": "model", "created": created, "owned_by": "registry", **entry}

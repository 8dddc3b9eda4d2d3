"""A fake of OpenAI's Responses API (`POST /v1/responses`, non-streaming) on a real loopback HTTP server.

It refuses what the real service refuses, so a client that drifts from the API fails its tests:

- a missing or wrong `Authorization: Bearer` key is a 401;
- the body is checked against the `openai` package's own request type (`ResponseCreateParamsNonStreaming`), and a
  parameter the API does not know is a 400 "Unknown parameter" (as the service answers);
- a structured output (`text.format.type == "json_schema"`) is checked against the `openai` type of that format and
  against the service's strict-schema rules (a valid JSON Schema; every object closed with `additionalProperties:
  false` and every property required), or a 400 names the problem;
- every answer is built as the `openai` package's `Response` model first, so the fake cannot drift either, and a
  scripted structured answer must satisfy the request's own schema (a test that scripts nonsense fails loudly).

Tests script the model's answers (`answer`), a refusal (`refuse_next`), or failures (`fail_next`, `fail_always`),
and read what was asked (`requests`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
from openai.types.responses import Response, ResponseFormatTextJSONSchemaConfig, ResponseTextConfig
from openai.types.responses.response_create_params import ResponseCreateParamsBase, ResponseCreateParamsNonStreaming
from pydantic import TypeAdapter, ValidationError

RESPONSES_PATH = "/v1/responses"
CHARS_PER_TOKEN = 4
_REQUEST = TypeAdapter(ResponseCreateParamsNonStreaming)
_KNOWN_PARAMETERS = frozenset(ResponseCreateParamsBase.__annotations__) | {"stream"}


class RequestRefused(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


@dataclass(frozen=True)
class RecordedRequest:
    body: dict[str, Any]
    authorization: str | None

    @property
    def input_text(self) -> str:
        value = self.body.get("input")
        return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class _Failure:
    status: int
    message: str


class FakeResponsesApi:
    def __init__(self, *, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self._answers: list[dict[str, Any] | str] = []
        self._failures: list[_Failure] = []
        self._fail_always: _Failure | None = None
        self._lock = threading.Lock()

    # ---- test controls ---------------------------------------------------------------------------------------------

    def answer(self, *outputs: Mapping[str, Any]) -> None:
        """The next requests' structured outputs, in order."""
        self._answers.extend(dict(output) for output in outputs)

    def refuse_next(self, text: str = "I can't help with that.") -> None:
        self._answers.append(text)

    def fail_next(self, status: int = 500, message: str = "The server had an error processing your request.") -> None:
        self._failures.append(_Failure(status, message))

    def fail_always(self, status: int = 500, message: str = "The server had an error processing your request.") -> None:
        self._fail_always = _Failure(status, message)

    # ---- the API ---------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        with self._lock:
            try:
                if method != "POST" or path != RESPONSES_PATH:
                    raise RequestRefused(404, f"Invalid URL ({method} {path})")
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise RequestRefused(400, "We could not parse the JSON body of your request.") from None
                self.requests.append(RecordedRequest(body if isinstance(body, dict) else {}, authorization))
                if authorization != f"Bearer {self.api_key}":
                    raise RequestRefused(401, "Incorrect API key provided.", kind="invalid_api_key")
                failure = self._failures.pop(0) if self._failures else self._fail_always
                if failure is not None:
                    raise RequestRefused(failure.status, failure.message, kind="server_error")
                return 200, self._respond(_checked(body))
            except RequestRefused as refused:
                error = {"message": refused.message, "type": refused.kind, "param": refused.param, "code": None}
                return refused.status, {"error": error}
            except (AssertionError, ValidationError) as problem:
                # A test scripted something the API would never send: answer 500 and keep it for the test to see.
                self.violations.append(str(problem))
                return 500, {"error": {"message": str(problem), "type": "fake_misuse", "param": None, "code": None}}

    def _respond(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self._answers:
            raise AssertionError("the fake Responses API got a request with no answer scripted")
        answer = self._answers.pop(0)
        text_format = (body.get("text") or {}).get("format") or {"type": "text"}
        if isinstance(answer, str):
            content: dict[str, Any] = {"type": "refusal", "refusal": answer}
            output_text = ""
        else:
            if text_format.get("type") == "json_schema":
                try:
                    jsonschema.validate(answer, text_format["schema"])
                except jsonschema.ValidationError as error:
                    raise AssertionError(f"the scripted answer breaks the request's schema: {error.message}") from None
            output_text = json.dumps(answer)
            content = {"type": "output_text", "text": output_text, "annotations": [], "logprobs": []}
        prompt = (body.get("instructions") or "") + json.dumps(body.get("input"))
        input_tokens, output_tokens = len(prompt) // CHARS_PER_TOKEN + 1, len(output_text) // CHARS_PER_TOKEN + 1
        payload: dict[str, Any] = {
            "id": "resp_" + secrets.token_hex(16),
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": body["model"],
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "output": [
                {
                    "type": "message",
                    "id": "msg_" + secrets.token_hex(16),
                    "status": "completed",
                    "role": "assistant",
                    "content": [content],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "store": body.get("store", True),
            "text": {"format": text_format},
            "error": None,
            "incomplete_details": None,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }
        Response.model_validate(payload)  # what this fake sends is what the SDK defines
        return payload


def _checked(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestRefused(400, "The request body must be a JSON object.")
    for name in body:
        if name not in _KNOWN_PARAMETERS:
            raise RequestRefused(400, f"Unknown parameter: '{name}'.", param=name)
    if body.get("stream"):
        raise RequestRefused(400, "This fake serves non-streaming requests only.", param="stream")
    try:
        _REQUEST.validate_python(body)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        raise RequestRefused(400, f"Invalid value: {first['msg']}", param=".".join(map(str, first["loc"]))) from None
    if not body.get("model"):
        raise RequestRefused(400, "Missing required parameter: 'model'.", param="model")
    if "text" in body:
        _check_text(body["text"])
    return body


def _check_text(text: Any) -> None:
    try:
        config = ResponseTextConfig.model_validate(text)
    except ValidationError as error:
        raise RequestRefused(400, f"Invalid 'text': {error.errors()[0]['msg']}", param="text") from None
    _no_unknown_fields(text, ResponseTextConfig, "text")
    text_format = text.get("format") or {}
    if text_format.get("type") != "json_schema":
        return
    _no_unknown_fields(text_format, ResponseFormatTextJSONSchemaConfig, "text.format")
    assert config.format is not None
    schema = text_format.get("schema")
    if not isinstance(schema, dict):
        raise RequestRefused(400, "Missing required parameter: 'text.format.schema'.", param="text.format.schema")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise RequestRefused(400, f"Invalid schema: {error.message}", param="text.format.schema") from None
    if text_format.get("strict"):
        _strict_rules(schema, schema, "text.format.schema")


def _no_unknown_fields(data: Mapping[str, Any], model: Any, where: str) -> None:
    known = {field.alias or name for name, field in model.model_fields.items()}
    for name in data:
        if name not in known:
            raise RequestRefused(400, f"Unknown parameter: '{where}.{name}'.", param=f"{where}.{name}")


def _strict_rules(node: Any, root: dict[str, Any], where: str) -> None:
    """Structured outputs' strict mode: every object closed and every property required (the service's 400s)."""
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            if node.get("additionalProperties") is not False:
                raise RequestRefused(
                    400,
                    f"Invalid schema for response_format: In context={where}, 'additionalProperties' is required "
                    "to be supplied and to be false.",
                    param="text.format.schema",
                )
            missing = set(node.get("properties", {})) - set(node.get("required", []))
            if missing:
                raise RequestRefused(
                    400,
                    f"Invalid schema for response_format: In context={where}, 'required' is required to include "
                    f"every key in properties. Missing {sorted(missing)}.",
                    param="text.format.schema",
                )
        for key, child in node.items():
            _strict_rules(child, root, f"{where}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            _strict_rules(child, root, f"{where}[{index}]")


class ResponsesServer:
    """The fake behind a real HTTP/1.1 server on 127.0.0.1 (an ephemeral port); `base_url` is what the SDK takes."""

    def __init__(self, fake: FakeResponsesApi) -> None:
        self.fake = fake
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> None:
        fake = self.fake

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, payload = fake.handle("POST", self.path, dict(self.headers.items()), self.rfile.read(length))
                encoded = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai-responses", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> ResponsesServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

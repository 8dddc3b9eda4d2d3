"""A local API Gateway (REST, proxy integration): HTTP in, the real Lambda handlers called with v1 proxy events.

It serves exactly the routes the stack deploys (`infra.constants.ROUTES`) under a stage prefix, builds events the way
API Gateway does (the stage in `requestContext.path`, not in `path`; decoded query parameters; the raw body), and
runs each handler in a worker thread as Lambda would run it, one event at a time per call. IAM-authorized routes are
served without SigV4 checking: this server binds to loopback only, for local runs and tests.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from infra.constants import ROUTES, Route

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class LocalLambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _load(route: Route) -> LambdaHandler:
    module_name, _, function = route.handler.rpartition(".")
    handler: LambdaHandler = getattr(importlib.import_module(module_name), function)
    return handler


def build_event(request: web.Request, route: Route, body: str, stage: str) -> dict[str, Any]:
    query_multi: dict[str, list[str]] = {}
    for key, value in request.query.items():
        query_multi.setdefault(key, []).append(value)
    headers_multi: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        headers_multi.setdefault(key, []).append(value)
    headers = {key: values[-1] for key, values in headers_multi.items()}
    headers.setdefault("X-Forwarded-Proto", request.scheme)
    # Mounted under /<stage>: like API Gateway, `path` is the resource path and only requestContext.path has the stage.
    stage_prefix = f"/{stage}"
    path = request.path.removeprefix(stage_prefix) if request.path.startswith(stage_prefix + "/") else request.path
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": headers_multi,
        "queryStringParameters": {k: v[-1] for k, v in query_multi.items()} or None,
        "multiValueQueryStringParameters": query_multi or None,
        "pathParameters": dict(request.match_info) or None,
        "stageVariables": None,
        "body": body or None,
        "isBase64Encoded": False,
        "requestContext": {
            "resourcePath": route.path,
            "httpMethod": request.method,
            "path": f"{stage_prefix}{path}",
            "stage": stage,
            "domainName": request.host,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": request.remote or "127.0.0.1"},
        },
    }


def create_api(stage: str = "local") -> web.Application:
    """The API as an aiohttp app. Mount it at `/<stage>` (the public URL Twilio signs includes the stage)."""
    app = web.Application()
    for route in ROUTES:
        handler = _load(route)

        async def invoke(request: web.Request, route: Route = route, handler: LambdaHandler = handler) -> web.Response:
            body = await request.text()
            event = build_event(request, route, body, stage)
            context = LocalLambdaContext(function_name=route.construct_id)
            result = await asyncio.to_thread(handler, event, context)
            headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
            for key, values in (result.get("multiValueHeaders") or {}).items():
                headers[key] = str(values[-1])
            headers.pop("Content-Length", None)
            return web.Response(status=int(result["statusCode"]), body=result.get("body") or "", headers=headers)

        for method in route.methods:
            app.router.add_route(method, route.path, invoke)
    return app


def create_server_app(stage: str = "local") -> web.Application:
    root = web.Application()
    root.add_subapp(f"/{stage}", create_api(stage))
    return root

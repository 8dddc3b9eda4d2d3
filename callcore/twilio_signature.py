"""Twilio request signatures, checked against the URL Twilio actually used (the *public* one).

Behind API Gateway the handler sees `/twilio/incoming` but Twilio signed `https://<api>/<stage>/twilio/incoming`;
behind a load balancer or CloudFront the relay sees `http://10.0.1.23:8080/media-stream` but Twilio signed
`wss://<public host>/media-stream`. Rebuilding that public URL is the job of this module, and the single most common
cause of 403s when it is wrong. The HMAC itself is twilio's own `RequestValidator`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator, compare, get_signature_algorithm

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


_PATH_PARAMETER = re.compile(r"\{([^}+]+)\+?\}")


def route_path(event: Mapping[str, Any]) -> str:
    """The invoked route's path without the stage or a custom domain's base path, from an API Gateway REST (v1)
    proxy event: `resource` (`/calls/{callSid}/transfer`) with its path parameters filled in.

    `path` cannot serve: on the execute-api address it lacks the stage (`/twilio/incoming`), but through a custom
    domain with a base path mapping it carries the base path (`/api/twilio/incoming`). `resource` is the same in both.
    """
    resource = event.get("resource")
    if not resource:
        return str(event.get("path") or "/")
    parameters: Mapping[str, str] = event.get("pathParameters") or {}
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        value = parameters.get(match.group(1))
        if value is None:
            missing.append(match.group(1))
            return match.group(0)
        return value

    filled = _PATH_PARAMETER.sub(fill, str(resource))
    return str(event.get("path") or "/") if missing else filled


def public_url_from_apigw_event(event: Mapping[str, Any], *, base_url: str | None = None) -> str:
    """The URL Twilio requested, rebuilt from an API Gateway REST (v1) proxy event.

    `base_url` (PUBLIC_API_BASE_URL: the stage URL, or a custom domain with its base path such as
    `https://voice.example.com/api`) replaces scheme, host and stage or base path; the route path is appended to it.
    Otherwise the host comes from the Host header and the path from `requestContext.path`: the path the client asked
    for, with the stage on the execute-api address (unlike `path`) and with the base path on a custom domain.
    """
    context = event.get("requestContext") or {}
    headers = event.get("headers") or {}
    if base_url:
        url = base_url.rstrip("/") + route_path(event)
    else:
        scheme = _header(headers, "X-Forwarded-Proto") or "https"
        host = _header(headers, "Host") or context.get("domainName")
        if not host:
            raise ValueError("cannot rebuild the public URL: no Host header and no requestContext.domainName")
        path = context.get("path") or event.get("path") or "/"
        url = f"{scheme}://{host}{path}"
    query = _raw_query(event)
    return f"{url}?{query}" if query else url


def base_path_of(base_url: str | None) -> str:
    """`https://voice.example.com/api/` -> `/api`: the prefix a custom domain's base path mapping adds to `path`
    (the resolver strips it to route). Empty for a URL without a path."""
    if not base_url:
        return ""
    return urlsplit(base_url).path.rstrip("/")


def _raw_query(event: Mapping[str, Any]) -> str:
    """API Gateway v1 decodes the query string; re-encode it in the order Twilio sent (insertion order kept)."""
    multi = event.get("multiValueQueryStringParameters")
    if multi:
        return urlencode([(k, v) for k, values in multi.items() for v in values])
    single = event.get("queryStringParameters")
    return urlencode(list(single.items())) if single else ""


def validate_form(
    auth_token: str,
    url: str,
    params: Mapping[str, str | list[str]],
    signature: str | None,
    *,
    signature_settings: str | None = None,
) -> bool:
    """A form-encoded webhook: HMAC over the exact URL plus the sorted parameters."""
    if not signature or not auth_token:
        return False
    validator = RequestValidator(auth_token)
    flat: dict[str, Any] = dict(params)
    algorithm = get_signature_algorithm(signature_settings)
    return bool(validator.validate(url, _MultiDict(flat), signature, algorithm=algorithm))


def validate_websocket(auth_token: str, public_wss_url: str, signature: str | None) -> bool:
    """The WebSocket upgrade: Twilio signs the exact `wss://host/path` URL with no parameters.

    `RequestValidator.validate` would also try the URL with `:80` added (it only knows https means 443), so the
    signature is computed here on the exact public URL instead.
    """
    if not signature or not auth_token:
        return False
    scheme = urlsplit(public_wss_url).scheme
    if scheme not in {"wss", "ws"}:
        raise ValueError(f"the relay's public URL must be a ws:// or wss:// URL, got {scheme!r}")
    expected = RequestValidator(auth_token).compute_signature(public_wss_url, {})
    return bool(compare(expected, signature))


class _MultiDict(dict[str, Any]):
    """Lets RequestValidator sign repeated form fields (`a=1&a=2`) the way Twilio does: every value, sorted."""

    def getall(self, name: str) -> list[str]:
        value = self[name]
        return list(value) if isinstance(value, list) else [value]


def signature_headers(headers: Mapping[str, str] | None) -> tuple[str | None, str | None]:
    """(X-Twilio-Signature, X-Twilio-Webhooks-Signature-Settings) from any casing of the headers."""
    return _header(headers, SIGNATURE_HEADER), _header(headers, SIGNATURE_SETTINGS_HEADER)

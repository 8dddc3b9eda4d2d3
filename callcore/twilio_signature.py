"""Twilio request signatures, checked against the URL Twilio actually used (the *public* one).

Behind API Gateway the handler sees `/twilio/incoming` but Twilio signed `https://<api>/<stage>/twilio/incoming`;
behind a load balancer or CloudFront the relay sees `http://10.0.1.23:8080/media-stream` but Twilio signed
`wss://<public host>/media-stream`. Rebuilding that public URL is the job of this module, and the single most common
cause of 403s when it is wrong. The HMAC itself is twilio's own `RequestValidator`.
"""

from __future__ import annotations

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


def public_url_from_apigw_event(event: Mapping[str, Any], *, base_url: str | None = None) -> str:
    """The URL Twilio requested, rebuilt from an API Gateway REST (v1) proxy event.

    `base_url` (e.g. `https://voice.example.com/api`, from a custom domain's base path mapping) overrides the scheme,
    host and stage prefix when the API is not reached on its execute-api address. Otherwise the host comes from the
    Host header and the path from `requestContext.path`, which, unlike `path`, includes the stage.
    """
    context = event.get("requestContext") or {}
    headers = event.get("headers") or {}
    resource_path = event.get("path") or "/"
    if base_url:
        prefix = base_url.rstrip("/")
        url = prefix + resource_path
    else:
        scheme = _header(headers, "X-Forwarded-Proto") or "https"
        host = _header(headers, "Host") or context.get("domainName")
        if not host:
            raise ValueError("cannot rebuild the public URL: no Host header and no requestContext.domainName")
        path = context.get("path") or resource_path
        url = f"{scheme}://{host}{path}"
    query = _raw_query(event)
    return f"{url}?{query}" if query else url


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

"""The team's keys from a `.env` file: parsed without touching the process environment (so no child process, such as
the CDK CLI, ever inherits them), validated key by key, and never shown: an error names the key and the rule only."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from deploy.errors import DeployError

# Each key: the rule a real value follows, said the way the error message says it.
RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "OPENAI_API_KEY": (
        re.compile(r"^sk-[A-Za-z0-9_\-]{20,}$"),
        "an OpenAI API key: sk- and at least 20 letters, digits, - or _",
    ),
    "TWILIO_ACCOUNT_SID": (
        re.compile(r"^AC[0-9a-fA-F]{32}$"),
        "AC followed by 32 hex digits (the Twilio console's home page)",
    ),
    "TWILIO_AUTH_TOKEN": (re.compile(r"^[0-9a-fA-F]{32}$"), "32 hex digits (the Twilio console's home page)"),
}
_LINE = re.compile(r"^(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)$")


@dataclass(frozen=True)
class TeamKeys:
    """The values stay out of repr() so that no traceback, log line or assertion message can show them."""

    openai_api_key: str = field(repr=False)
    twilio_account_sid: str = field(repr=False)
    twilio_auth_token: str = field(repr=False)

    def by_name(self) -> dict[str, str]:
        """Each value under its .env name (the name is what messages show)."""
        return {
            "OPENAI_API_KEY": self.openai_api_key,
            "TWILIO_ACCOUNT_SID": self.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio_auth_token,
        }


def read_team_keys(path: Path) -> TeamKeys:
    """The keys in `path`; a DeployError naming every missing or malformed key (never its value)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: an editor's byte-order mark is not part of the first key
    except FileNotFoundError:
        raise DeployError(f"{path}: no such file; create it with {', '.join(RULES)} (see infra/DEPLOY.md)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DeployError(f"{path}: cannot be read ({type(error).__name__})") from None
    values = parse_env(text)
    problems = []
    for name, (pattern, rule) in RULES.items():
        value = values.get(name, "")
        if not value:
            problems.append(f"{name} is missing")
        elif not pattern.match(value):
            problems.append(f"{name} is malformed: expected {rule}")
    if problems:
        raise DeployError(f"{path}: " + "; ".join(problems))
    return TeamKeys(
        openai_api_key=values["OPENAI_API_KEY"],
        twilio_account_sid=values["TWILIO_ACCOUNT_SID"],
        twilio_auth_token=values["TWILIO_AUTH_TOKEN"],
    )


def parse_env(text: str) -> dict[str, str]:
    """`KEY=value` lines as dotenv files write them: `#` comments, blank lines, an optional `export `, values in
    single or double quotes (kept verbatim) or bare (an inline ` #` comment ends them). The last line of a key wins."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        values[match.group("key")] = _unquote(match.group("value").strip())
    return values


def _unquote(value: str) -> str:
    if value[:1] in {"'", '"'} and (end := value.find(value[0], 1)) > 0:
        return value[1:end]
    return value.split(" #", 1)[0].strip()

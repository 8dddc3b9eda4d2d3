"""Reading the team's keys from .env: the dotenv forms a team writes, and messages that name a key, never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.env_file import TeamKeys, parse_env, read_team_keys
from deploy.errors import DeployError

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "fedcba9876543210" * 2
OPENAI = "sk-proj-" + "x1" * 20


def test_dotenv_lines_are_read_as_dotenv_files_write_them() -> None:
    text = (
        "# keys\n\n"
        "OPENAI_API_KEY=sk-bare  # an inline comment\n"
        'export TWILIO_ACCOUNT_SID="AC with # inside"  # comment after quotes\n'
        "TWILIO_AUTH_TOKEN = 'single quoted'\n"
        "not a key line\n"
        "OPENAI_API_KEY=sk-last-wins\n"
    )

    assert parse_env(text) == {
        "OPENAI_API_KEY": "sk-last-wins",
        "TWILIO_ACCOUNT_SID": "AC with # inside",
        "TWILIO_AUTH_TOKEN": "single quoted",
    }


def test_well_formed_keys_are_read_and_never_shown_by_repr(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    # As some editors save it: a byte-order mark first, Windows line ends.
    env.write_text(f"\ufeffOPENAI_API_KEY={OPENAI}\r\nTWILIO_ACCOUNT_SID={SID}\r\nTWILIO_AUTH_TOKEN={TOKEN}\r\n")

    keys = read_team_keys(env)

    assert keys == TeamKeys(openai_api_key=OPENAI, twilio_account_sid=SID, twilio_auth_token=TOKEN)
    for value in (OPENAI, SID, TOKEN):
        assert value not in repr(keys)


def test_every_missing_or_malformed_key_is_named_without_its_value(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"OPENAI_API_KEY=not-a-key-{TOKEN}\nTWILIO_ACCOUNT_SID={SID}x\n")

    with pytest.raises(DeployError) as raised:
        read_team_keys(env)

    message = str(raised.value)
    assert "OPENAI_API_KEY is malformed: expected an OpenAI API key" in message
    assert "TWILIO_ACCOUNT_SID is malformed: expected AC followed by 32 hex digits" in message
    assert "TWILIO_AUTH_TOKEN is missing" in message
    assert TOKEN not in message
    assert SID not in message

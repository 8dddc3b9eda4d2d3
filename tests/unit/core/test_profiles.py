"""A profile file is validated by one model: good files load with their defaults; every kind of bad value, and any
unknown key, is refused with a message naming the file, the key and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcore.profiles import AfterHours, ProfileError, load_profile, load_profiles
from callcore.profiles.__main__ import main as profiles_command
from callcore.profiles.loader import DEFAULT_PROFILES_DIR

MINIMAL = """
business_name = "Corner Dental"
numbers = ["+15550100123"]
timezone = "Europe/London"
greeting = "Good morning, {business_name}."
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_example_profile_is_valid_and_answers_its_number() -> None:
    (example,) = [item for item in load_profiles(DEFAULT_PROFILES_DIR) if item.profile_id == "example"]
    assert example.profile.numbers == ["+15550100000"]
    assert example.profile.transfer.human_number == "+15550100999"
    assert example.profile.booking.max_bookings_per_call == 2


def test_a_minimal_profile_gets_the_documented_defaults(tmp_path: Path) -> None:
    loaded = load_profile(_write(tmp_path, "dental", MINIMAL))
    assert loaded.profile_id == "dental"
    profile = loaded.profile
    assert profile.hours.after_hours is AfterHours.AGENT
    assert (profile.booking.max_bookings_per_call, profile.booking.max_bookings_per_caller_per_day) == (2, 3)
    assert profile.recording.enabled is False
    assert loaded.prompt_path is None
    assert "transfer_to_human" not in profile.enabled_tools  # no human line to transfer to
    assert "book_appointment" in profile.enabled_tools


def test_a_prompt_file_is_read_from_beside_the_profile(tmp_path: Path) -> None:
    (tmp_path / "dental.md").write_text("You answer for {business_name}.", encoding="utf-8")
    loaded = load_profile(_write(tmp_path, "dental", MINIMAL + 'prompt_file = "dental.md"\n'))
    assert loaded.prompt_template() == "You answer for {business_name}."


@pytest.mark.parametrize(
    ("extra", "key", "rule"),
    [
        ('greting = "hi"\n', "greting", "unknown key"),
        ("[hours]\nopen = true\n", "hours.open", "unknown key"),
        ('[hours]\nweekly = "mon-fri 9-5"\n', "hours.weekly", "cannot read"),
        ('[hours]\nafter_hours = "voicemail"\n', "hours.after_hours", "'agent', 'transfer' or 'message'"),
        ("[booking]\nmax_bookings_per_call = -1\n", "booking.max_bookings_per_call", "greater than or equal to 0"),
        ('[transfer]\nhuman_number = "555-0199"\n', "transfer.human_number", "should match pattern"),
        ('[business_api]\nbase_url = "not a url"\n', "business_api.base_url", "URL"),
        ('tools = ["send_fax"]\n', "tools", "unknown tool(s) send_fax"),
        ('prompt_file = "missing.md"\n', "prompt_file", "does not exist"),
        ('[transfer]\ndtmf_digit = "0"\n', "(top level)", "transfer.human_number is required"),
        ('tools = ["transfer_to_human"]\n', "(top level)", "transfer_to_human needs transfer.human_number"),
    ],
)
def test_a_bad_value_is_refused_naming_file_key_and_rule(tmp_path: Path, extra: str, key: str, rule: str) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile(_write(tmp_path, "dental", MINIMAL + extra))
    message = str(caught.value)
    assert str(tmp_path / "dental.toml") in message
    assert f"key {key}:" in message
    assert rule in message


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("timezone", '"Mars/Olympus"', "not an IANA time zone"),
        ("numbers", '["+15550100123", "+15550100123"]', "listed twice"),
        ("greeting", '"Hello {caller}"', "the only placeholder is {business_name}"),
        ("business_name", '""', "at least 1 character"),
    ],
)
def test_a_bad_required_value_is_refused(tmp_path: Path, field: str, value: str, rule: str) -> None:
    lines = [line for line in MINIMAL.strip().splitlines() if not line.startswith(f"{field} ")]
    text = "\n".join([*lines, f"{field} = {value}"])
    with pytest.raises(ProfileError, match=r"dental\.toml") as caught:
        load_profile(_write(tmp_path, "dental", text))
    assert rule in str(caught.value)


def test_a_missing_required_key_and_broken_toml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"key greeting: Field required"):
        load_profile(_write(tmp_path, "dental", MINIMAL.replace('greeting = "Good morning, {business_name}."', "")))
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(_write(tmp_path, "dental", "business_name = "))


def test_a_file_name_that_cannot_be_an_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="the file name is the profile id"):
        load_profile(_write(tmp_path, "Corner Dental", MINIMAL))


def test_two_profiles_cannot_answer_the_same_number(tmp_path: Path) -> None:
    _write(tmp_path, "dental", MINIMAL)
    _write(tmp_path, "ortho", MINIMAL.replace("Corner Dental", "Corner Ortho"))
    with pytest.raises(ProfileError, match=r"ortho.toml: key numbers: \+15550100123 is already answered by profile"):
        load_profiles(tmp_path)


def test_only_one_profile_may_answer_unknown_numbers(tmp_path: Path) -> None:
    _write(tmp_path, "dental", "answers_unknown_numbers = true\n" + MINIMAL)
    other = MINIMAL.replace("Corner Dental", "Corner Ortho").replace("+15550100123", "+15550100124")
    _write(tmp_path, "ortho", "answers_unknown_numbers = true\n" + other)
    with pytest.raises(ProfileError, match=r"ortho\.toml: key answers_unknown_numbers: profile 'dental' already"):
        load_profiles(tmp_path)


def test_an_empty_profiles_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="holds no profile"):
        load_profiles(tmp_path)


def test_the_profiles_command_prints_effective_settings_or_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "dental", MINIMAL)
    assert profiles_command([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert '"max_bookings_per_caller_per_day": 3' in out
    assert "1 profile(s) valid, answering 1 number(s)" in out

    _write(tmp_path, "broken", MINIMAL.replace("Europe/London", "Nowhere"))
    assert profiles_command([str(tmp_path)]) == 1
    assert "broken.toml: key timezone:" in capsys.readouterr().err

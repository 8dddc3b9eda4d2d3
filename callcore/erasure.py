"""`erase-caller --number +14155550123 [--dry-run]` (or `python -m callcore.erasure`): erase everything kept about
one phone number, for a caller who asks to be forgotten.

It deletes, for every call of that number (as caller, or as the person an outbound call dialled): the call record, its
transcript turns, its transcript, call summary and recordings in S3 (every stored version: the bucket is versioned),
the bookings made in the call; then the caller's profile and live-call set. `--dry-run` lists all of that and deletes
nothing. Numbers are printed masked.

It reads CALLS_TABLE, TRANSCRIPTS_BUCKET and CALLER_HASH_SECRET (or CALLER_HASH_SECRET_ARN; locally STREAM_TOKEN_SECRET
if that is how the deployment hashes) from the environment, with the operator's own AWS credentials (infra/DEPLOY.md
lists the permissions). Exit codes: 0 done (or nothing found), 1 an AWS error, 2 a usage error (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from pydantic import Field, SecretStr

from callcore.masking import mask_phone
from callcore.models import E164_PATTERN, CallRecord
from callcore.settings import (
    CALLER_HASH_KEY_DESCRIPTION,
    SettingsError,
    StorageSettings,
    caller_hash_key,
)
from callcore.store import CallStore
from callcore.store.erasure import CallerData, delete_caller_data, find_caller_data
from callcore.transcripts import TranscriptArchive

EXIT_USAGE = 2
EXIT_AWS = 1


class ErasureSettings(StorageSettings):
    caller_hash_secret: SecretStr | None = Field(
        default=None, alias="CALLER_HASH_SECRET", min_length=16, description=CALLER_HASH_KEY_DESCRIPTION
    )
    stream_token_secret: SecretStr | None = Field(
        default=None, alias="STREAM_TOKEN_SECRET", description="only where CALLER_HASH_SECRET is unset (locally)"
    )

    @property
    def hash_key(self) -> bytes:
        return caller_hash_key(self.caller_hash_secret, self.stream_token_secret)


class UsageError(Exception):
    """What the operator asked for cannot be done as asked: one line, exit code 2."""


def _is_live(record: CallRecord) -> bool:
    """A call the relay or Twilio may still write to: erasing it now would leave what they write afterwards."""
    return not record.status.is_terminal and record.finished_at is None and record.seat_released_at is None


def describe(number: str, data: CallerData, objects: dict[str, list[tuple[str, str | None]]], out: TextIO) -> None:
    print(f"caller {mask_phone(number)}:", file=out)
    if data.empty and not any(objects.values()):
        print("  nothing is kept about this number", file=out)
        return
    for record in data.calls:
        print(
            f"  call {record.call_sid} ({record.direction.value}, {record.created_at:%Y-%m-%d %H:%M} UTC): "
            f"record, {data.turn_counts.get(record.call_sid, 0)} turns, "
            f"{len(objects.get(record.call_sid, []))} S3 object versions",
            file=out,
        )
        for key, version in objects.get(record.call_sid, []):
            print(f"    s3://{key}" + (f" (version {version})" if version else ""), file=out)
    for booking in data.bookings:
        print(f"  booking {booking.day} {booking.time} (call {booking.call_sid})", file=out)
    for sort_key in data.caller_items:
        print(f"  caller item {sort_key}", file=out)


def erase(
    number: str,
    *,
    store: CallStore,
    archive: TranscriptArchive,
    hash_key: bytes,
    dry_run: bool,
    out: TextIO,
) -> int:
    """List what is kept about `number`, then (unless `dry_run`) delete it. Returns the DynamoDB items and S3 object
    versions deleted (0 on a dry run)."""
    if not E164_PATTERN.match(number):
        raise UsageError("--number must be an E.164 phone number such as +14155550123")
    data = find_caller_data(store, number, hash_key=hash_key)
    live = [record.call_sid for record in data.calls if _is_live(record)]
    if live and not dry_run:
        raise UsageError(f"a call of this number is in progress ({', '.join(live)}): run again once it has ended")
    objects = {record.call_sid: archive.call_objects(record.call_sid, record.created_at) for record in data.calls}
    describe(number, data, objects, out)
    if dry_run:
        print("dry run: nothing was deleted", file=out)
        return 0
    versions = [entry for entries in objects.values() for entry in entries]
    archive.delete_versions(versions)
    items = delete_caller_data(store, data, hash_key=hash_key, number=number)
    print(f"deleted {items} table items and {len(versions)} S3 object versions", file=out)
    return items + len(versions)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="erase-caller", description="Erase everything kept about one phone number (records, turns, transcripts, "
        "recordings, bookings, caller profile)."
    )  # fmt: skip
    parser.add_argument("--number", required=True, help="the caller's number in E.164, e.g. +14155550123")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    args = parser.parse_args(argv)
    try:
        settings = ErasureSettings.from_env()
        hash_key = settings.hash_key
    except (SettingsError, ValueError) as error:
        print(f"erase-caller: {' '.join(line.strip() for line in str(error).splitlines())}", file=sys.stderr)
        return EXIT_USAGE
    store = CallStore(settings.calls_table, retention=settings.retention)
    archive = TranscriptArchive(settings.transcripts_bucket, hash_key=hash_key)
    try:
        erase(args.number, store=store, archive=archive, hash_key=hash_key, dry_run=args.dry_run, out=sys.stdout)
    except UsageError as error:
        print(f"erase-caller: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # an AWS error: say which, without a traceback full of request details
        print(f"erase-caller: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_AWS
    return 0


if __name__ == "__main__":
    sys.exit(main())

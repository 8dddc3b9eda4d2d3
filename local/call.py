"""One complete phone call on this machine, through every real part of the product, with no account anywhere.

    python -m local.call

What is real: the Lambda handlers (behind `local.apigw`, the API Gateway stand-in), the relay (`relay.app`), the shared
core, DynamoDB and S3 (a moto server reached through `AWS_ENDPOINT_URL`, exactly as in AWS). What stands in for the
outside world: Twilio (the phone network: it signs and posts the webhooks, streams the caller's audio at real time,
plays the agent's audio and echoes marks; its REST API ends the call when the Lambdas say so) and OpenAI (a scripted
Realtime model that checks every event against the `openai` package's own types and detects the caller's speech by
its energy). Everything binds to 127.0.0.1 only.

The caller asks for the opening hours, books a table, and says goodbye; the agent answers through its tools, hangs up
after its goodbye was heard, and the call leaves its record in DynamoDB and its transcript in S3, printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import secrets
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from moto.server import ThreadedMotoServer
from twilio.request_validator import RequestValidator

from callcore.aws import dynamodb_client, reset_clients, s3_client
from callcore.local_resources import create_bucket, create_table
from callcore.masking import mask_phone
from callcore.models import CallRecord, TranscriptTurn
from callcore.store import PARTITION_KEY, SORT_KEY, CallStore
from callcore.transcripts import TranscriptArchive
from local.apigw import create_server_app
from tests.fakes.audio import tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FunctionCallResponse
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeCall, FakeTwilioRest, TwilioRestServer

STAGE = "local"
ACCOUNT_SID = "AC" + "0" * 32
AGENT_NUMBER = "+15550100000"  # the number the team's customers dial (555-01xx: reserved for fiction)
CALLER_NUMBER = "+15550100123"
HUMAN_LINE = "+15550100999"
# The public address Twilio is given. Locally the relay listens on plain ws://127.0.0.1, as it does behind a
# TLS-terminating load balancer in AWS; signatures are checked against this public URL either way.
RELAY_PUBLIC_URL = "wss://relay.localhost/media-stream"
BUSINESS_TIMEZONE = "America/New_York"


@dataclass(frozen=True)
class CallerLine:
    """What the caller says (as audio: a tone is speech to the model's VAD) and what the model hears in it."""

    transcript: str
    speech_ms: int


def conversation(now: datetime) -> tuple[list[CallerLine], list[AudioResponse | FunctionCallResponse]]:
    """The caller's lines and the scripted model's replies, in order."""
    tomorrow = (now.astimezone(ZoneInfo(BUSINESS_TIMEZONE)) + timedelta(days=1)).strftime("%Y-%m-%d")
    caller = [
        CallerLine("Hi, what are your opening hours today?", 1200),
        CallerLine("Great. Could I book a table for two tomorrow at ten? The name is Ada.", 1600),
        CallerLine("No, that's everything. Thanks!", 900),
    ]
    model: list[AudioResponse | FunctionCallResponse] = [
        FunctionCallResponse("get_business_hours", {}),
        AudioResponse(tone(1400, 520), "We're open every day from eight in the morning until eight at night."),
        FunctionCallResponse("book_appointment", {"name": "Ada", "date": tomorrow, "time": "10:00", "party_size": 2}),
        AudioResponse(tone(1600, 560), "You're all set: a table for two tomorrow at ten, under Ada."),
        FunctionCallResponse("end_call", {"reason": "the caller has what they needed"}),
        AudioResponse(tone(900, 600), "Thanks for calling, Ada. Goodbye!"),
    ]
    return caller, model


# ---- the phone network ----------------------------------------------------------------------------------------------


class PhoneNetwork(FakeTwilioRest):
    """Twilio's REST API that also acts on the live call: an update that completes the call or gives it new TwiML
    ends the media stream (as Twilio does), and the call's final status callback is then posted."""

    def __init__(self, loop: asyncio.AbstractEventLoop, auth_token: str) -> None:
        super().__init__(account_sid=ACCOUNT_SID, auth_token=auth_token)
        self._loop = loop
        self.call_ended: asyncio.Event = asyncio.Event()
        self.ended_by: str | None = None

    def _update(self, call: FakeCall, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        status, body = super()._update(call, form)
        if status == 200:
            ended_by = "hangup" if call.status in {"completed", "canceled"} else "transfer"
            self._loop.call_soon_threadsafe(self._end, ended_by)
        return status, body

    def _end(self, ended_by: str) -> None:
        self.ended_by = self.ended_by or ended_by
        self.call_ended.set()


async def post_webhook(
    http: aiohttp.ClientSession, auth_token: str, url: str, params: dict[str, str]
) -> tuple[int, str]:
    """Post a form the way Twilio does: signed over the exact URL and parameters."""
    signature: str = RequestValidator(auth_token).compute_signature(url, params)
    async with http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as response:
        return response.status, await response.text()


def parse_stream_twiml(xml: str) -> tuple[str, str]:
    """(stream URL, token) from `<Connect><Stream url=...><Parameter name="token" .../>`."""
    stream = ET.fromstring(xml).find("./Connect/Stream")  # noqa: S314 - our own Lambda's TwiML
    if stream is None:
        raise RuntimeError(f"the incoming-call webhook did not connect the call to the agent:\n{xml}")
    token = next(p.get("value", "") for p in stream.findall("Parameter") if p.get("name") == "token")
    return stream.get("url", ""), token


# ---- the run --------------------------------------------------------------------------------------------------------


@dataclass
class CallResult:
    call_sid: str
    record: CallRecord
    turns: list[TranscriptTurn]
    transcript_key: str | None
    transcripts_bucket: str
    ended_by: str | None
    stream_url: str
    greeting_heard_ms: float
    violations: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def local_aws() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def warm_up_moto(table: str) -> None:
    """One conditional update on a scratch item before the call. moto builds its update-expression machinery on the
    first UpdateItem of the process (~150 ms here); without this, whichever request of the call comes first (the
    relay's admission, typically) pays it, and the printed greeting latency measures moto, not the relay."""
    client = dynamodb_client()
    key = {PARTITION_KEY: {"S": "LOCAL#WARM-UP"}, SORT_KEY: {"S": "WARM-UP"}}
    client.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET touched = if_not_exists(touched, :yes) ADD uses :one",
        ConditionExpression=f"attribute_not_exists({SORT_KEY}) OR attribute_exists({SORT_KEY})",
        ExpressionAttributeValues={":yes": {"BOOL": True}, ":one": {"N": "1"}},
    )
    client.delete_item(TableName=table, Key=key)


async def run_call(*, verbose: bool = True) -> CallResult:
    """Place one inbound call through the whole local stack and return what it left behind."""
    from relay.app import GREETINGS, STATE, create_app  # noqa: PLC0415 - after the environment is set up
    from relay.metrics import RelayMetrics  # noqa: PLC0415
    from relay.settings import RelaySettings  # noqa: PLC0415

    say = print if verbose else (lambda *_: None)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's access log
    loop = asyncio.get_running_loop()
    call_sid = "CA" + uuid.uuid4().hex
    caller_lines, replies = conversation(datetime.now(ZoneInfo(BUSINESS_TIMEZONE)))
    suffix = uuid.uuid4().hex[:8]
    # Fresh per run: the local "secrets" only ever sign traffic between the processes of this one call.
    auth_token = secrets.token_hex(16)
    with local_aws() as aws_endpoint, TwilioRestServer(PhoneNetwork(loop, auth_token)) as twilio_rest:
        network: PhoneNetwork = twilio_rest.fake  # type: ignore[assignment]
        model = FakeRealtimeServer(
            api_key="local-openai-key",
            vad=True,
            default_response=AudioResponse(tone(1100, 480), "Thanks for calling. How can I help you today?"),
        )
        await model.start()
        environment = {
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "CALLS_TABLE": f"local-calls-{suffix}",
            "TRANSCRIPTS_BUCKET": f"local-transcripts-{suffix}",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": auth_token,
            "TWILIO_API_BASE_URL": twilio_rest.base_url,
            "TWILIO_PHONE_NUMBER": AGENT_NUMBER,
            "STREAM_TOKEN_SECRET": secrets.token_hex(32),
            "OPENAI_API_KEY": "local-openai-key",
            "OPENAI_REALTIME_URL": model.url,
            "RELAY_PUBLIC_URL": RELAY_PUBLIC_URL,
            "HUMAN_TRANSFER_NUMBER": HUMAN_LINE,
            "BUSINESS_NAME": "Harbor Bistro",
            "BUSINESS_TIMEZONE": BUSINESS_TIMEZONE,
            "BUSINESS_HOURS": "mon-sun 08:00-20:00",
            "POWERTOOLS_METRICS_NAMESPACE": "PhoneVoiceAgent",
            "POWERTOOLS_SERVICE_NAME": "phone-agent",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            # The Lambdas' EMF documents would interleave with the conversation; the relay's are summarized below.
            "POWERTOOLS_METRICS_DISABLED": "true",
            "LOG_LEVEL": "WARNING",
        }
        previous = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        reset_clients()
        try:
            create_table(dynamodb_client(), environment["CALLS_TABLE"])
            warm_up_moto(environment["CALLS_TABLE"])
            create_bucket(s3_client(), environment["TRANSCRIPTS_BUCKET"])
            store = CallStore(environment["CALLS_TABLE"])
            async with serve(create_server_app(STAGE)) as api_origin:
                api_base = f"{api_origin}/{STAGE}"
                os.environ["CALL_CONTROL_URL"] = api_base
                settings = RelaySettings.from_env()
                metrics_out = io.StringIO()
                relay_app = create_app(settings, metrics=RelayMetrics(settings.metrics_namespace, stream=metrics_out))
                async with serve(relay_app) as relay_origin, aiohttp.ClientSession() as http:
                    async with asyncio.timeout(30):
                        await relay_app[GREETINGS].ready.wait()  # rendered once by the model, replayed per call
                    model.script(*replies)
                    model.caller_transcripts.extend(line.transcript for line in caller_lines)
                    say(f"calling {mask_phone(AGENT_NUMBER)} from {mask_phone(CALLER_NUMBER)} ({call_sid})")

                    # Twilio: the number's voice webhook.
                    form = {
                        "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": call_sid,
                        "CallStatus": "ringing", "Direction": "inbound", "From": CALLER_NUMBER, "To": AGENT_NUMBER,
                    }  # fmt: skip
                    status, twiml = await post_webhook(http, auth_token, f"{api_base}/twilio/incoming", form)
                    if status != 200:
                        raise RuntimeError(f"incoming-call webhook answered {status}: {twiml}")
                    stream_url, token = parse_stream_twiml(twiml)
                    network.add_call(call_sid, to=AGENT_NUMBER, from_=CALLER_NUMBER)
                    progress = {**form, "CallbackSource": "call-progress-events"}
                    answered = {**progress, "CallStatus": "in-progress", "SequenceNumber": "0"}
                    await post_webhook(http, auth_token, f"{api_base}/twilio/status", answered)

                    # Twilio: the media stream, to the relay's public URL (reached here on loopback).
                    started = time.monotonic()
                    phone = FakeTwilioCall(
                        relay_origin.replace("http://", "ws://") + "/media-stream",
                        public_url=stream_url,
                        auth_token=auth_token,
                        call_sid=call_sid,
                        token=token,
                        account_sid=ACCOUNT_SID,
                    )
                    await phone.connect()
                    await wait_until_heard(phone, since_bytes=0)
                    greeting_heard_ms = phone.heard_ms()
                    say(f"  agent: (greeting, {greeting_heard_ms / 1000:.1f} s of audio)")
                    for line in caller_lines:
                        say(f"  caller: {line.transcript}")
                        before = len(phone.received_media)
                        await phone.send_audio(tone(line.speech_ms, 220, 0.6))
                        await phone.send_silence(700)  # the pause that ends the caller's turn
                        await wait_until_heard(phone, since_bytes=before, settle_ms=600)
                        if network.call_ended.is_set():
                            break
                    async with asyncio.timeout(20):
                        await network.call_ended.wait()
                    await phone.stop()
                    duration = max(1, round(time.monotonic() - started))
                    completed = {**progress, "CallStatus": "completed", "SequenceNumber": "1"}
                    await post_webhook(
                        http, auth_token, f"{api_base}/twilio/status", {**completed, "CallDuration": str(duration)}
                    )
                    async with asyncio.timeout(10):
                        await relay_app[STATE].idle.wait()
                    await phone.close()
            record = store.require_call(call_sid)
            archive = TranscriptArchive(environment["TRANSCRIPTS_BUCKET"], hash_key=settings.caller_hash_key)
            turns = archive.read_transcript(call_sid, record.created_at) or []
            metrics = [json.loads(line) for line in metrics_out.getvalue().splitlines() if line.strip()]
            return CallResult(
                call_sid=call_sid,
                record=record,
                turns=turns,
                transcript_key=record.transcript_key,
                transcripts_bucket=environment["TRANSCRIPTS_BUCKET"],
                ended_by=network.ended_by,
                stream_url=stream_url,
                greeting_heard_ms=greeting_heard_ms,
                violations=[*model.violations, *phone.violations],
                metrics=metrics,
            )
        finally:
            await model.close()
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            reset_clients()


async def wait_until_heard(
    phone: FakeTwilioCall, *, since_bytes: int, settle_ms: int = 400, limit_seconds: float = 20.0
) -> None:
    """Wait until the agent has answered (sent audio beyond `since_bytes`), everything it sent has played, and the
    line then stayed quiet a moment (a tool call may come before the spoken answer)."""
    deadline = time.monotonic() + limit_seconds
    quiet_since: float | None = None
    while time.monotonic() < deadline and not phone.closed.is_set():
        answered = len(phone.received_media) > since_bytes
        if answered and phone.queued_ms() == 0:
            quiet_since = quiet_since or time.monotonic()
            if (time.monotonic() - quiet_since) * 1000 >= settle_ms:
                return
        else:
            quiet_since = None
        await asyncio.sleep(0.05)


def report(result: CallResult) -> str:
    record = result.record
    lines = [
        "",
        f"call {record.call_sid}: {record.status.value}, outcome {record.outcome.value if record.outcome else '-'}"
        f" (ended by {result.ended_by or 'the caller'})",
        f"  greeting latency {record.latencies.greeting_ms} ms; turn latency p50 {record.latencies.turn_p50_ms} ms;"
        f" tools {record.tool_call_count}; barge-ins {record.barge_in_count}",
        f"  tokens in/out {record.usage.input_audio_tokens + record.usage.input_text_tokens}/"
        f"{record.usage.output_audio_tokens + record.usage.output_text_tokens};"
        f" estimated cost ${record.estimated_cost_usd}",
        f"  transcript: s3://{result.transcripts_bucket}/{result.transcript_key}",
    ]
    for turn in result.turns:
        tools = "".join(f" [{tool.name} -> {tool.result}]" for tool in turn.tool_calls)
        lines.append(f"    {turn.index:>2} {turn.role.value:>6}: {turn.text}{tools}")
    if result.violations:
        lines.append("  PROTOCOL VIOLATIONS: " + "; ".join(result.violations))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    result = asyncio.run(run_call(verbose=not args.quiet))
    print(report(result))
    return 1 if result.violations or result.record.outcome is None else 0


if __name__ == "__main__":
    sys.exit(main())

"""The whole product running on this machine, with no account anywhere: what `make call` (and the browser softphone)
put a call through.

    async with local_stack(StackOptions.for_profile(Path("profiles/example.toml"))) as stack:  # or StackOptions()
        stream_url, token = await stack.incoming_call(call_sid, caller=..., to=...)
        ... open the media stream on stack.relay_media_url ...
        await stack.call_completed(call_sid, caller=..., to=..., duration_seconds=...)

What is real: the Lambda handlers (behind `local.apigw`, the API Gateway stand-in), the relay (`relay.app`), the
shared core, DynamoDB and S3 through boto3's `AWS_ENDPOINT_URL`: a moto server started here, or, when
`AWS_ENDPOINT_URL` is already set, that endpoint (the table and bucket named by `CALLS_TABLE` / `TRANSCRIPTS_BUCKET`
are created there if missing, and the call's data stays there for the analysts' tools). What stands in for the
outside world: Twilio's REST API (`PhoneNetwork`) and the OpenAI Realtime model: the offline spoken stand-in
(`local.voice_model`) or the scripted fake of the tests. Everything binds to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import secrets
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from callcore.aws import dynamodb_client, reset_clients, s3_client
from callcore.local_resources import create_bucket, create_table
from callcore.profiles.loader import LoadedProfile, ProfileError, load_profile
from callcore.profiles.published import PublishedProfile
from callcore.store import PARTITION_KEY, SORT_KEY, CallStore
from callcore.store.receptionist_profiles import ReceptionistProfiles
from local.apigw import create_server_app
from local.moto_endpoint import moto_endpoint
from tests.fakes.audio import tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeCall, FakeTwilioRest, TwilioRestServer

StreamT = TypeVar("StreamT", bound=FakeTwilioCall)
if TYPE_CHECKING:
    from local.voice_model.server import VoiceModelServer
    from relay.settings import RelaySettings

STAGE = "local"
ACCOUNT_SID = "AC" + "0" * 32
# The public address Twilio is given. Locally the relay listens on plain ws://127.0.0.1, as it does behind a
# TLS-terminating load balancer in AWS; signatures are checked against this public URL either way.
RELAY_PUBLIC_URL = "wss://relay.localhost/media-stream"
DEFAULT_CALLS_TABLE = "local-calls"
DEFAULT_TRANSCRIPTS_BUCKET = "local-transcripts"
STREAM_END_AFTER_UPDATE_S = 0.5
# openai: the real OpenAI Realtime API, with the OPENAI_API_KEY of the environment (the browser softphone's choice
# when that key is set); spoken / scripted: the local stand-ins.
ModelKind = Literal["spoken", "scripted", "openai"]


@dataclass(frozen=True)
class StackOptions:
    model: ModelKind = "spoken"
    business_name: str = "Harbor Bistro"
    business_timezone: str = "America/New_York"
    business_hours: str = "mon-sun 11:00-22:00"
    agent_number: str = "+15550100000"  # the number customers dial (555-01xx: reserved for fiction)
    human_line: str = "+15550100999"
    voice: str = "marin"  # the agent's voice (the relay's default); the caller speaks in another
    profile: LoadedProfile | None = None  # published into the call table as `cdk deploy` does; None = no profiles

    @classmethod
    def for_profile(cls, path: Path, *, model: ModelKind = "spoken") -> StackOptions:
        """A run on the receptionist profile at `path`: it is published into the local call table (so the Lambdas
        and the relay read it there, as deployed), and the call dials its first number. The relay's own settings
        follow the profile too, for the parts of a run that do not go through it. Raises ProfileError."""
        loaded = load_profile(path)
        profile = loaded.profile
        if not profile.numbers:
            raise ProfileError(f"{path}: key numbers: the local call dials the profile's first number; it has none")
        return cls(
            model=model,
            business_name=profile.business_name,
            business_timezone=profile.timezone,
            business_hours=profile.hours.weekly,
            agent_number=profile.numbers[0],
            human_line=profile.transfer.human_number or cls.human_line,
            voice=profile.voice,
            profile=loaded,
        )


# ---- the phone network ----------------------------------------------------------------------------------------------


class PhoneNetwork(FakeTwilioRest):
    """Twilio's REST API that also acts on the live call: an update that completes the call or gives it new TwiML
    ends the media stream (as Twilio does)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, auth_token: str) -> None:
        super().__init__(account_sid=ACCOUNT_SID, auth_token=auth_token)
        self._loop = loop
        self.ended: dict[str, str] = {}  # CallSid -> "hangup" | "transfer"
        self._changed = asyncio.Event()

    def _update(self, call: FakeCall, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        status, body = super()._update(call, form)
        if status == 200:
            ended_by = "hangup" if call.status in {"completed", "canceled"} else "transfer"
            # Twilio answers the update, then tears the stream down: the stream ends a moment after the answer.
            self._loop.call_soon_threadsafe(
                self._loop.call_later, STREAM_END_AFTER_UPDATE_S, self._end, call.sid, ended_by
            )
        return status, body

    def _end(self, call_sid: str, ended_by: str) -> None:
        self.ended.setdefault(call_sid, ended_by)
        self._changed.set()

    async def wait_ended(self, call_sid: str) -> str:
        while call_sid not in self.ended:
            self._changed.clear()
            await self._changed.wait()
        return self.ended[call_sid]


def parse_stream_twiml(xml: str) -> tuple[str, str]:
    """(stream URL, token) from `<Connect><Stream url=...><Parameter name="token" .../>`."""
    stream = ET.fromstring(xml).find("./Connect/Stream")  # noqa: S314 - our own Lambda's TwiML
    if stream is None:
        raise RuntimeError(f"the incoming-call webhook did not connect the call to the agent:\n{xml}")
    token = next(p.get("value", "") for p in stream.findall("Parameter") if p.get("name") == "token")
    return stream.get("url", ""), token


# ---- start-up -------------------------------------------------------------------------------------------------------


@dataclass
class LocalStack:
    options: StackOptions
    environment: dict[str, str]
    auth_token: str
    api_base: str
    relay_media_url: str  # ws://127.0.0.1:PORT/media-stream, where the fake Twilio dials in
    network: PhoneNetwork
    model: FakeRealtimeServer | VoiceModelServer | None  # None: the real OpenAI
    model_kind: ModelKind
    store: CallStore
    settings: RelaySettings
    relay_app: web.Application
    http: aiohttp.ClientSession
    external_aws: bool
    metrics_out: io.StringIO = field(default_factory=io.StringIO)

    @property
    def calls_table(self) -> str:
        return self.environment["CALLS_TABLE"]

    @property
    def transcripts_bucket(self) -> str:
        return self.environment["TRANSCRIPTS_BUCKET"]

    async def post_webhook(self, route: str, params: dict[str, str]) -> tuple[int, str]:
        """Post a form the way Twilio does: signed over the exact public URL and parameters."""
        url = f"{self.api_base}{route}"
        signature: str = RequestValidator(self.auth_token).compute_signature(url, params)
        async with self.http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as response:
            return response.status, await response.text()

    def _call_form(self, call_sid: str, caller: str, to: str, status: str) -> dict[str, str]:
        return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": status,
                "Direction": "inbound", "From": caller, "To": to}  # fmt: skip

    async def incoming_call(self, call_sid: str, *, caller: str, to: str | None = None) -> tuple[str, str]:
        """Twilio's side of a call arriving at `to` (default: the agent's number): the voice webhook, then the call
        answered. Returns the TwiML's stream URL and token."""
        to = to or self.options.agent_number
        status, twiml = await self.post_webhook("/twilio/incoming", self._call_form(call_sid, caller, to, "ringing"))
        if status != 200:
            raise RuntimeError(f"incoming-call webhook answered {status}: {twiml}")
        stream_url, token = parse_stream_twiml(twiml)
        self.network.add_call(call_sid, to=to, from_=caller)
        answered = {**self._call_form(call_sid, caller, to, "in-progress"), "CallbackSource": "call-progress-events"}
        await self.post_webhook("/twilio/status", {**answered, "SequenceNumber": "0"})
        return stream_url, token

    def media_stream(self, call_sid: str, stream_url: str, token: str, *, kind: type[StreamT]) -> StreamT:
        """Twilio's side of the call's media stream, as the TwiML told it (`stream_url`, `token`), not yet connected.
        `kind` is the stream's class: FakeTwilioCall, or the softphone's, which plays the agent's audio in the
        browser."""
        return kind(
            self.relay_media_url,
            public_url=stream_url,
            auth_token=self.auth_token,
            call_sid=call_sid,
            token=token,
            account_sid=self.environment["TWILIO_ACCOUNT_SID"],
        )

    async def call_completed(self, call_sid: str, *, caller: str, duration_seconds: int) -> None:
        """Twilio's final status callback."""
        form = self._call_form(call_sid, caller, self.options.agent_number, "completed")
        extra = {"CallbackSource": "call-progress-events", "SequenceNumber": "1", "CallDuration": str(duration_seconds)}
        await self.post_webhook("/twilio/status", {**form, **extra})


@contextlib.contextmanager
def _aws_endpoint() -> Iterator[tuple[dict[str, str], bool]]:
    """The AWS part of the environment: the endpoint already configured (kept, with its data), else a moto server
    of this run's own (gone when the run ends)."""
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield (
            {
                # An endpoint of the user's: their credentials and region if they set any, else a local endpoint's.
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID") or "local",
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY") or "local",
                "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION")
                or os.environ.get("AWS_REGION")
                or "us-east-1",
                "AWS_ENDPOINT_URL": configured,
                "CALLS_TABLE": os.environ.get("CALLS_TABLE") or DEFAULT_CALLS_TABLE,
                "TRANSCRIPTS_BUCKET": os.environ.get("TRANSCRIPTS_BUCKET") or DEFAULT_TRANSCRIPTS_BUCKET,
            },
            True,
        )
        return
    suffix = uuid.uuid4().hex[:8]
    with moto_endpoint() as endpoint:
        yield (
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                "CALLS_TABLE": f"local-calls-{suffix}",
                "TRANSCRIPTS_BUCKET": f"local-transcripts-{suffix}",
            },
            False,
        )


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """The run's settings in the process environment (the Lambdas and the relay read them there), and the caller's
    environment back as it was afterwards."""
    saved = dict(os.environ)
    os.environ.update(values)
    reset_clients()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_clients()


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def warm_up_dynamodb(table: str) -> None:
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


async def available_model(requested: ModelKind, say: Any = print) -> ModelKind:
    """The spoken model if its speech parts load here; else one line saying why, and the scripted model."""
    if requested in {"scripted", "openai"}:
        return requested
    try:
        from local.voice_model.recognition import check_speech_parts  # noqa: PLC0415 - numpy etc. when asked for

        await asyncio.to_thread(check_speech_parts)
    except ImportError as error:  # numpy or the voice model's own modules
        say(f"spoken model unavailable ({error}); using the scripted model (make setup installs the speech parts)")
        return "scripted"
    except Exception as error:  # SpeechUnavailable, or a library that fails to load on this machine
        say(f"spoken model unavailable ({error}); using the scripted model")
        return "scripted"
    return "spoken"


async def _start_model(kind: ModelKind, options: StackOptions) -> FakeRealtimeServer | VoiceModelServer | None:
    if kind == "openai":
        return None
    if kind == "spoken":
        from local.voice_model.server import VoiceModelServer  # noqa: PLC0415

        voice_model = VoiceModelServer()
        await voice_model.start()
        parts = voice_model.parts
        # Load the recogniser for this business now, not on the caller's first words.
        await asyncio.to_thread(parts.recogniser, parts.vocabulary(options.business_name))
        return voice_model
    scripted = FakeRealtimeServer(
        api_key="local-openai-key",
        vad=True,
        default_response=AudioResponse(tone(1100, 480), "Thanks for calling. How can I help you today?"),
    )
    await scripted.start()
    return scripted


def stack_environment(
    aws: dict[str, str], auth_token: str, twilio_api_base_url: str, model_url: str | None, options: StackOptions
) -> dict[str, str]:
    """The settings every part of the local stack reads: the Lambdas, the relay, the shared core. Without
    `model_url`, the relay talks to the real OpenAI with the OPENAI_API_KEY of the environment."""
    model = (
        {"OPENAI_API_KEY": os.environ["OPENAI_API_KEY"]}
        if model_url is None
        else {"OPENAI_API_KEY": "local-openai-key", "OPENAI_REALTIME_URL": model_url}
    )
    return {
        **model,
        **aws,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": auth_token,
        "TWILIO_API_BASE_URL": twilio_api_base_url,
        "TWILIO_PHONE_NUMBER": options.agent_number,
        "STREAM_TOKEN_SECRET": secrets.token_hex(32),
        "OPENAI_VOICE": options.voice,
        "RELAY_PUBLIC_URL": RELAY_PUBLIC_URL,
        "HUMAN_TRANSFER_NUMBER": options.human_line,
        "BUSINESS_NAME": options.business_name,
        "BUSINESS_TIMEZONE": options.business_timezone,
        "BUSINESS_HOURS": options.business_hours,
        "POWERTOOLS_METRICS_NAMESPACE": "PhoneVoiceAgent",
        "POWERTOOLS_SERVICE_NAME": "phone-agent",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        # The Lambdas' EMF documents would interleave with the conversation; the relay's are summarized after.
        "POWERTOOLS_METRICS_DISABLED": "true",
        "LOG_LEVEL": "WARNING",
    }


@contextlib.asynccontextmanager
async def local_stack(options: StackOptions, *, say: Any = print) -> AsyncIterator[LocalStack]:
    """Start every part, ready for calls (the relay's greeting already rendered), and stop them all afterwards."""
    from relay.app import GREETINGS, create_app  # noqa: PLC0415 - after the environment is set up
    from relay.metrics import RelayMetrics  # noqa: PLC0415
    from relay.settings import RelaySettings  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's access log
    model_kind = await available_model(options.model, say)
    # Fresh per run: the local "secrets" only ever sign traffic between the processes of this one run.
    auth_token = secrets.token_hex(16)
    loop = asyncio.get_running_loop()
    with _aws_endpoint() as (aws, external), TwilioRestServer(PhoneNetwork(loop, auth_token)) as twilio_rest:
        model = await _start_model(model_kind, options)
        model_url = None if model is None else model.url
        environment = stack_environment(aws, auth_token, twilio_rest.base_url, model_url, options)
        try:
            with _environment(environment):
                create_table(dynamodb_client(), environment["CALLS_TABLE"])
                create_bucket(s3_client(), environment["TRANSCRIPTS_BUCKET"])
                if not external:
                    warm_up_dynamodb(environment["CALLS_TABLE"])
                if options.profile is not None:
                    profiles = ReceptionistProfiles(environment["CALLS_TABLE"], client=dynamodb_client())
                    profiles.publish([PublishedProfile.from_loaded(options.profile)])
                async with serve(create_server_app(STAGE)) as api_origin:
                    api_base = f"{api_origin}/{STAGE}"
                    os.environ["CALL_CONTROL_URL"] = environment["CALL_CONTROL_URL"] = api_base
                    settings = RelaySettings.from_env()
                    metrics_out = io.StringIO()
                    relay_app = create_app(
                        settings, metrics=RelayMetrics(settings.metrics_namespace, stream=metrics_out)
                    )
                    async with serve(relay_app) as relay_origin, aiohttp.ClientSession() as http:
                        async with asyncio.timeout(30):
                            await relay_app[GREETINGS].ready.wait()  # rendered once by the model, replayed per call
                        yield LocalStack(
                            options=options,
                            environment=environment,
                            auth_token=auth_token,
                            api_base=api_base,
                            relay_media_url=relay_origin.replace("http://", "ws://") + "/media-stream",
                            network=twilio_rest.fake,  # type: ignore[arg-type]
                            model=model,
                            model_kind=model_kind,
                            store=CallStore(environment["CALLS_TABLE"]),
                            settings=settings,
                            relay_app=relay_app,
                            http=http,
                            external_aws=external,
                            metrics_out=metrics_out,
                        )
        finally:
            if model is not None:
                await model.close()

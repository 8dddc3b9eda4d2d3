"""Every TwiML document the Lambdas answer with, built with twilio's own TwiML classes (never by string formatting,
so values are escaped and the verbs and attributes are the ones Twilio documents)."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

OVERFLOW_APOLOGY = (
    "Sorry, we can't take your call right now and no one is available to answer. Please call again later. Goodbye."
)
AGENT_LOST_APOLOGY = "Sorry, we lost the connection to our assistant. Please call again later. Goodbye."
HUMAN_RING_SECONDS = 25  # then the caller hears HUMAN_UNAVAILABLE instead of ringing out
HUMAN_UNAVAILABLE = "Sorry, nobody could take your call right now. Please call us again later. Goodbye."
NOT_IN_SERVICE = "Sorry, the number you have called is not in service. Goodbye."
WHISPER_INTRO = "Incoming transfer from the voice assistant."
WHISPER_WITHOUT_SUMMARY = "Incoming transfer from the voice assistant. No summary is available."


def _xml(response: VoiceResponse) -> str:
    return str(response)


def _human_or_goodbye(response: VoiceResponse, human_number: str | None, apology: str) -> VoiceResponse:
    if human_number:
        response.dial(human_number)
    else:
        response.say(apology)
        response.hangup()
    return response


def connect_to_agent(*, relay_url: str, token: str, stream_status_url: str, human_number: str | None) -> str:
    """`<Connect><Stream>` to the relay, the stream token as a `<Parameter>`.

    `<Connect>` blocks while the media stream is open; Twilio runs the verbs after it only when the relay closes the
    socket without ending or redirecting the call (the relay crashed, refused the stream, or is draining). Those verbs
    send the caller to the human line, so nobody is left in dead air.
    """
    response = VoiceResponse()
    connect = response.connect()
    stream = connect.stream(url=relay_url, status_callback=stream_status_url, status_callback_method="POST")
    stream.parameter(name="token", value=token)
    return _xml(_human_or_goodbye(response, human_number, AGENT_LOST_APOLOGY))


def route_to_human(human_number: str | None) -> str:
    """Over capacity, relay unhealthy, or the primary webhook failed: dial the human line, or apologise and hang up."""
    return _xml(_human_or_goodbye(VoiceResponse(), human_number, OVERFLOW_APOLOGY))


def transfer_to_human(*, human_number: str, whisper_url: str) -> str:
    """A warm transfer: the human hears the whisper URL's TwiML (the agent's summary) before the caller is bridged."""
    response = VoiceResponse()
    dial = response.dial(timeout=HUMAN_RING_SECONDS)
    dial.number(human_number, url=whisper_url, method="POST")
    # Twilio goes on to the next verb when nobody answers (or the line is busy): the caller hears why, not silence.
    response.say(HUMAN_UNAVAILABLE)
    return _xml(response)


def whisper(*, reason: str | None, summary: str | None) -> str:
    """Spoken to the human only, before the bridge."""
    response = VoiceResponse()
    if summary:
        response.say(WHISPER_INTRO)
        if reason:
            response.say(f"Reason: {reason}.")
        response.say(summary)
    else:
        response.say(WHISPER_WITHOUT_SUMMARY)
    return _xml(response)


def voicemail(message: str | None) -> str:
    """An outbound call reached an answering machine: leave the message (after the beep) or just hang up."""
    response = VoiceResponse()
    if message:
        response.say(message)
    response.hangup()
    return _xml(response)


def say_and_hang_up(message: str) -> str:
    """A line that answers no calls now (closed, with `after_hours = message`): its message, then the call ends."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return _xml(response)


def not_in_service() -> str:
    """The dialled number is no deployed line's and no line answers unknown numbers."""
    return say_and_hang_up(NOT_IN_SERVICE)


def reject_busy() -> str:
    """The caller already has their most live calls (MAX_LIVE_CALLS_PER_CALLER): a busy signal. `<Reject>` answers
    nothing, so the call costs no minutes, no agent seat and no human's time."""
    response = VoiceResponse()
    response.reject(reason="busy")
    return _xml(response)

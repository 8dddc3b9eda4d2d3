"""An offline stand-in for the OpenAI Realtime model, for local calls: it speaks the Realtime GA protocol over a
loopback WebSocket (`server.VoiceModelServer`), hears the caller with pocketsphinx (US English, constrained to the
call's vocabulary: `grammar`, `recognition`, `turns`), answers through the session's declared tools with short
replies built from their results (`intent`), and speaks with espeak-ng (`synthesis`).

It is a local stand-in, not a language model: it knows a receptionist's few jobs (opening hours, tables, a person,
goodbye) and says so when it did not understand. `recognition.check_speech_parts()` tells whether it can run here.
The modules that need the speech parts (numpy, pocketsphinx, espeak-ng) import them themselves, so the dialogue rules
load without them.
"""


class SpeechUnavailable(Exception):
    """A speech part (espeak-ng, pocketsphinx, numpy) cannot be loaded on this machine; the message says which and
    why."""

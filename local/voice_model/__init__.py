"""An offline stand-in for the OpenAI Realtime model, for local calls: it speaks the Realtime GA protocol over a
loopback WebSocket, hears the caller with pocketsphinx (US English, constrained to the call's vocabulary), answers
through the session's declared tools with short replies built from their results, and speaks with espeak-ng.

It is a local stand-in, not a language model: it knows a receptionist's few jobs (opening hours, tables, a person,
goodbye) and says so when it did not understand. `check_speech_parts()` tells whether it can run on this machine.
"""

from local.voice_model.recognition import check_speech_parts
from local.voice_model.server import AGENT_VOICES, SpeechParts, VoiceModelServer
from local.voice_model.synthesis import SpeechUnavailable, Voice

__all__ = ["AGENT_VOICES", "SpeechParts", "SpeechUnavailable", "Voice", "VoiceModelServer", "check_speech_parts"]

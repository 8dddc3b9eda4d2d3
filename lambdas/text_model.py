"""OpenAI's Responses API behind a small adapter: one transcript in, the call's insights out (structured output whose
JSON schema is `callcore.models.CallInsights`), with the tokens it took.

Only the post-call analysis function imports this module, and only that function's layer carries the `openai`
package. Failures become `TextModelError`, so the logic never inspects an SDK exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import openai
from openai import OpenAI

from callcore.models import CallInsights

# The SDK retries connection errors, 408/409/429 and 5xx with backoff this many times before giving up; the queue
# then redelivers the event (three receives), and a message that still fails lands in the dead-letter queue.
SDK_RETRIES = 2
MAX_OUTPUT_TOKENS = 2000
INSTRUCTIONS = """\
You read the transcript of one phone call between a business's AI receptionist ("agent") and a caller, after the
call ended, and report on it for the business. Digits were masked as "#" before you got the transcript: never guess
them. Answer with:
- summary: two sentences, what the caller wanted and how the call ended;
- intent: the caller's main intent in a few words;
- resolution: "resolved" when the agent did what was asked, "transferred" when the caller was handed to a person,
  "follow_up_needed" when someone must get back to the caller;
- sentiment: the caller's mood from -1 (very negative) through 0 (neutral) to 1 (very positive);
- lead_score: 0-100, how likely the caller becomes or stays a paying customer, and lead_reason, one sentence why;
- action_items: what the business should do next, each a short imperative sentence; an empty list when nothing.
"""


class TextModelError(Exception):
    """The text model could not give an analysis (unreachable, refused, rate limited, or answered off-schema)."""


@dataclass(frozen=True)
class ModelAnswer:
    insights: CallInsights
    model: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int


class TranscriptAnalyst:
    def __init__(self, client: OpenAI, *, model: str) -> None:
        self._client = client
        self._model = model

    def analyze(self, conversation: str) -> ModelAnswer:
        try:
            response = self._client.responses.parse(
                model=self._model,
                instructions=INSTRUCTIONS,
                input=conversation,
                text_format=CallInsights,
                max_output_tokens=MAX_OUTPUT_TOKENS,
                store=False,  # the transcript is the business's data: not kept at OpenAI for later retrieval
            )
        except openai.APIError as error:
            raise TextModelError(f"the text model failed: {type(error).__name__}: {error}") from None
        except ValueError as error:  # the SDK could not parse the answer against the schema
            raise TextModelError(f"the text model answered off-schema: {error}") from None
        insights = response.output_parsed
        if insights is None:
            reason = response.incomplete_details.reason if response.incomplete_details else "no parsed output"
            raise TextModelError(f"the text model gave no analysis ({response.status}: {reason})")
        usage = response.usage
        return ModelAnswer(
            insights=insights,
            model=response.model,
            input_tokens=usage.input_tokens if usage else 0,
            cached_tokens=usage.input_tokens_details.cached_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
        )


@lru_cache(maxsize=2)
def transcript_analyst(api_key: str, base_url: str | None, model: str, timeout_seconds: float) -> TranscriptAnalyst:
    """One client per container and key (its HTTP connection pool stays warm across invocations)."""
    client = OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=SDK_RETRIES)
    return TranscriptAnalyst(client, model=model)

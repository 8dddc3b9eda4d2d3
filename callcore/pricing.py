"""Estimated cost of a call's model usage, from `response.done` token counts and prices kept in settings."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, ConfigDict, Field

from callcore.models import TokenUsage

PER_MILLION = Decimal(1_000_000)


class ModelPrices(BaseModel):
    """USD per 1M tokens. Defaults are gpt-realtime's published rates (PROTOCOLS.md); set them in settings."""

    model_config = ConfigDict(frozen=True)

    audio_input: Decimal = Field(default=Decimal(32), ge=0)
    audio_output: Decimal = Field(default=Decimal(64), ge=0)
    text_input: Decimal = Field(default=Decimal(4), ge=0)
    text_output: Decimal = Field(default=Decimal(16), ge=0)
    cached_input: Decimal = Field(default=Decimal("0.4"), ge=0)


def estimate_cost(usage: TokenUsage, prices: ModelPrices) -> Decimal:
    """Cached input tokens are billed at the cached rate instead of the full one; they are counted within the
    input totals by OpenAI, so they are taken out of the audio-then-text input first."""
    cached = usage.input_cached_tokens
    cached_audio = min(cached, usage.input_audio_tokens)
    cached_text = min(cached - cached_audio, usage.input_text_tokens)
    total = (
        (usage.input_audio_tokens - cached_audio) * prices.audio_input
        + (usage.input_text_tokens - cached_text) * prices.text_input
        + (cached_audio + cached_text) * prices.cached_input
        + usage.output_audio_tokens * prices.audio_output
        + usage.output_text_tokens * prices.text_output
    ) / PER_MILLION
    return total.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


class TextModelPrices(BaseModel):
    """USD per 1M tokens of the text model the post-call analysis uses (set them in settings)."""

    model_config = ConfigDict(frozen=True)

    input: Decimal = Field(default=Decimal("0.25"), ge=0)
    cached_input: Decimal = Field(default=Decimal("0.025"), ge=0)
    output: Decimal = Field(default=Decimal(2), ge=0)

    def cost(self, *, input_tokens: int, cached_tokens: int, output_tokens: int) -> Decimal:
        """Cached tokens are part of `input_tokens` (as OpenAI counts them) and billed at the cached rate."""
        cached = min(cached_tokens, input_tokens)
        total = (
            (input_tokens - cached) * self.input + cached * self.cached_input + output_tokens * self.output
        ) / PER_MILLION
        return total.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)

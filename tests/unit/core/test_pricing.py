from __future__ import annotations

from decimal import Decimal

from callcore.models import TokenUsage
from callcore.pricing import ModelPrices, estimate_cost


def test_one_minute_of_each_way_audio_at_published_rates() -> None:
    # ~600 tokens/min caller audio in, ~1200 tokens/min model audio out (PROTOCOLS.md).
    usage = TokenUsage(input_audio_tokens=600, output_audio_tokens=1200)
    assert estimate_cost(usage, ModelPrices()) == Decimal("0.096000")  # 600*32/1e6 + 1200*64/1e6


def test_cached_input_is_billed_at_the_cached_rate() -> None:
    usage = TokenUsage(input_audio_tokens=1000, input_text_tokens=500, input_cached_tokens=1200)
    prices = ModelPrices(audio_input=Decimal(10), text_input=Decimal(2), cached_input=Decimal(1))
    # 1000 cached audio + 200 cached text at 1; 300 text at 2.
    assert estimate_cost(usage, prices) == Decimal("0.001800")


def test_usage_adds_up() -> None:
    total = TokenUsage(input_audio_tokens=1, output_text_tokens=2) + TokenUsage(input_audio_tokens=3)
    assert total == TokenUsage(input_audio_tokens=4, output_text_tokens=2)
    assert total.total_tokens == 6

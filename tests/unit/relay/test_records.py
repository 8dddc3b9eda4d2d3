from __future__ import annotations

from relay.records import cut_text, usage_from_response_done


def test_cut_text_is_proportional_on_word_boundaries() -> None:
    text = "one two three four five six seven eight nine ten"
    assert cut_text(text, 500, 1000) == "one two three four five"
    assert cut_text(text, 1000, 1000) == text
    assert cut_text(text, None, 1000) == ""
    assert cut_text(text, 0, 1000) == ""
    assert cut_text(text, 10, 0) == ""


def test_usage_from_response_done() -> None:
    event = {
        "type": "response.done",
        "response": {
            "status": "completed",
            "usage": {
                "total_tokens": 360,
                "input_token_details": {"text_tokens": 100, "audio_tokens": 50, "cached_tokens": 20},
                "output_token_details": {"text_tokens": 10, "audio_tokens": 200},
            },
        },
    }
    usage = usage_from_response_done(event)
    assert (usage.input_text_tokens, usage.input_audio_tokens, usage.input_cached_tokens) == (100, 50, 20)
    assert (usage.output_text_tokens, usage.output_audio_tokens) == (10, 200)
    assert usage_from_response_done({"response": {}}).total_tokens == 0

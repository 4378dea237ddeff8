"""Usage between the formats (api/translate/usage.py): Anthropic's and the Responses
API's usage normalised to chat's shape, where prompt tokens include the cache's."""

from __future__ import annotations

import pytest

from api.translate import usage

from ..fakes.agent_upstream import Usage


def chat(prompt: int, completion: int, cached: int = 0, write: int = 0, reasoning: int = 0) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": write},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


@pytest.mark.parametrize(
    "start, delta, expected",
    [
        # a plain Message's usage: input_tokens excludes what was read from and written to the cache
        (
            {
                "input_tokens": 100,
                "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 600,
                "output_tokens": 40,
            },
            None,
            chat(1000, 40, cached=600, write=300),
        ),
        # a stream: message_start's input counts, message_delta's output count
        (
            {"input_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 600, "output_tokens": 1},
            {"output_tokens": 40},
            chat(700, 40, cached=600),
        ),
        # message_delta's counts are cumulative: where given (not null) they are final
        (
            {"input_tokens": 0, "output_tokens": 1},
            {
                "input_tokens": 20,
                "cache_creation_input_tokens": None,
                "cache_read_input_tokens": 5,
                "output_tokens": 9,
                "output_tokens_details": {"thinking_tokens": 4},
            },
            chat(25, 9, cached=5, reasoning=4),
        ),
        ({"input_tokens": 3, "output_tokens": 2, "cost": 0.5}, None, {**chat(3, 2), "cost": 0.5}),
        (None, None, chat(0, 0)),
    ],
)
def test_from_anthropic(start, delta, expected):
    assert usage.from_anthropic(start, delta) == expected


@pytest.mark.parametrize(
    "given, expected",
    [
        (
            {
                "input_tokens": 1000,
                "input_tokens_details": {"cached_tokens": 600},
                "output_tokens": 40,
                "output_tokens_details": {"reasoning_tokens": 12},
                "total_tokens": 1040,
            },
            chat(1000, 40, cached=600, reasoning=12),
        ),
        (
            {
                "input_tokens": 10,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4},
                "output_tokens": 1,
                "cost": 2,
            },
            {**chat(10, 1, write=4), "cost": 2},
        ),
        ({}, chat(0, 0)),
    ],
)
def test_from_responses(given, expected):
    assert usage.from_responses(given) == expected


@pytest.mark.parametrize("counts", [Usage(1000, 600, 0, 40, 12), Usage(5000, 0, 2500, 10, 0), Usage(9, 0, 0, 1, 0)])
def test_every_provider_report_of_one_usage_normalises_to_the_same_counts(counts):
    """The fake upstream reports one usage in each provider's terms; all three read back alike."""
    expected = {k: v for k, v in counts.chat().items() if k != "cost"}
    assert usage.from_anthropic(counts.anthropic()) == expected
    assert usage.from_responses(counts.responses()) == expected
    assert usage.from_anthropic(usage.to_anthropic(expected)) == expected
    assert usage.from_responses(usage.to_responses(expected)) == expected


def test_to_anthropic_and_to_responses_from_chat():
    given = {**chat(1000, 40, cached=600, write=300, reasoning=12), "cost": 7}
    assert usage.to_anthropic(given) == {
        "input_tokens": 100,
        "output_tokens": 40,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 600,
        "output_tokens_details": {"thinking_tokens": 12},
        "cost": 7,
    }
    assert usage.to_responses(given) == {
        "input_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 1040,
        "cost": 7,
    }
    assert (usage.to_anthropic(None), usage.to_responses(None)) == ({"input_tokens": 0, "output_tokens": 0}, None)

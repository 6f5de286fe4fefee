"""Sampler protocol, seeds, the shared stop logic, the scripted backend and build_sampler."""

from __future__ import annotations

import hashlib
import re

import pytest

from cj2.generation import (
    GenerationError,
    Sample,
    Sampler,
    SamplingParams,
    ScriptedSampler,
    base,
    build_sampler,
    finalize,
    sample_seed,
    verdict_end,
)
from cj2.generation.base import check_request, find_stop, pieces, verdict_complete

USER = [{"role": "user", "content": "Which response is better?"}]


def bracket_locator(text: str, fmt: str):
    """A stand-in for cj2.verdict.locate_verdict: the last ``[[A]]``/``[[B]]`` counts."""
    assert fmt == "brackets"
    found = list(re.finditer(r"\[\[([AB])\]\]", text))
    if not found:
        return None
    return found[-1].group(1), found[-1].start(), found[-1].end()


def score_locator(text: str, fmt: str):
    """A marker that ends in a digit: ``Score: 10`` must not be cut at ``Score: 1``."""
    found = list(re.finditer(r"Score: (\d+)", text))
    if not found:
        return None
    return found[-1].group(1), found[-1].start(), found[-1].end()


@pytest.fixture
def brackets(monkeypatch):
    monkeypatch.setattr(base, "_locate", bracket_locator)


# ------------------------------------------------------------------------------------------------
# SamplingParams and seeds
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_new_tokens": 0},
        {"temperature": -0.1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_k": -1},
        {"stop": ("",)},
        {"seed": 1.5},
    ],
)
def test_sampling_params_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SamplingParams(**kwargs)


def test_sampling_params_normalises_stop_and_reads_mappings():
    assert SamplingParams(stop="###").stop == ("###",)
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")
    params = SamplingParams.from_mapping({"temperature": 0.7, "stop": ["</s>"], "max_new_tokens": 96})
    assert params == SamplingParams(temperature=0.7, stop=("</s>",), max_new_tokens=96)
    assert not params.greedy and SamplingParams().greedy
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['temprature'\]"):
        SamplingParams.from_mapping({"temprature": 0.7})


def test_sample_seed_is_a_pinned_pure_function():
    # Pinned values: a change here would change every resumed run's samples.
    assert sample_seed(0, "item-7", 3) == 1868468832
    digest = hashlib.blake2b(b"0\x1fitem-7\x1f3", digest_size=8).digest()
    assert int.from_bytes(digest, "big") % (2**31 - 1) == 1868468832
    assert sample_seed(0, 0, 0) == 1995394824
    seeds = {sample_seed(b, k, j) for b in range(3) for k in ("a", "b", 0, 1) for j in range(8)}
    assert len(seeds) == 3 * 4 * 8  # all distinct
    assert all(0 <= s < 2**31 - 1 for s in seeds)
    assert sample_seed(0, 3, 1) == sample_seed(0, "3", 1)  # documented: index 3 and id "3" coincide


def test_check_request_names_the_bad_prompt():
    assert check_request([USER, USER], 2, None) == [0, 1]
    assert check_request([USER, USER], 2, ["x", "y"]) == ["x", "y"]
    with pytest.raises(ValueError, match="n=0"):
        check_request([USER], 0, None)
    with pytest.raises(ValueError, match="prompt 1: expected a non-empty list"):
        check_request([USER, []], 1, None)
    with pytest.raises(ValueError, match="prompt 0, message 1: field 'content' must be a string"):
        check_request([[{"role": "user", "content": "a"}, {"role": "assistant", "content": None}]], 1, None)
    with pytest.raises(ValueError, match="keys has 1 entries for 2 prompts"):
        check_request([USER, USER], 1, ["x"])
    with pytest.raises(ValueError, match="distinct"):
        check_request([USER, USER], 1, ["x", "x"])


# ------------------------------------------------------------------------------------------------
# The shared stop logic
# ------------------------------------------------------------------------------------------------


def test_find_stop_takes_the_earliest_of_several():
    assert find_stop("abc END xyz STOP", ["STOP", "END"]) == 4
    assert find_stop("abc", ["x"]) is None
    assert find_stop("", ["x"]) is None


def test_finalize_stop_strings_and_passthrough():
    params = SamplingParams(stop=("\n\n", "###"))
    assert finalize("Reasoning.### trailing", "stop", params) == ("Reasoning.", "stop")
    assert finalize("one\n\ntwo###", "length", params) == ("one", "stop")
    assert finalize("no stop here", "length", params) == ("no stop here", "length")
    assert finalize("no stop here", "stop", params) == ("no stop here", "stop")
    with pytest.raises(ValueError, match="raw finish reason"):
        finalize("x", "verdict", params)


def test_finalize_cuts_at_the_first_complete_verdict(brackets):
    params = SamplingParams(stop_on_verdict="brackets")
    text = "A is clearer. [[A]] Wait, maybe [[B]] after all."
    assert finalize(text, "stop", params) == ("A is clearer. [[A]]", "verdict")
    # An unfinished marker is not a verdict.
    assert finalize("So the answer is [[A", "length", params) == ("So the answer is [[A", "length")
    # A verdict before the stop string wins; a stop string before the verdict wins.
    both = SamplingParams(stop=("END",), stop_on_verdict="brackets")
    assert finalize("x [[B]] y END z", "stop", both) == ("x [[B]]", "verdict")
    assert finalize("x END [[B]]", "stop", both) == ("x ", "stop")
    # A marker at the very end of a final text counts.
    assert finalize("verdict: [[B]]", "stop", params) == ("verdict: [[B]]", "verdict")


def test_verdict_end_cuts_only_after_punctuation(monkeypatch):
    # Every cj2 marker ends in punctuation; a (fake) marker ending in a digit is cut at the next
    # punctuation, or at the end of a final text. "Score: 1" is no verdict while "0" may still follow.
    monkeypatch.setattr(base, "_locate", score_locator)
    assert verdict_end("Score: 10, fine", "score") == len("Score: 10,")
    assert verdict_end("Score: 1", "score", final=False) is None
    assert verdict_end("Score: 1", "score", final=True) == len("Score: 1")
    assert verdict_complete("Score: 10", "score") is False
    assert verdict_complete("Score: 10.", "score") is True
    assert verdict_complete("Score: 10. More", "score") is True


@pytest.mark.parametrize("offset", [0, 5, 63, 64, 65, 130, 500])
def test_verdict_end_finds_the_earliest_marker_at_any_distance(brackets, offset):
    text = "x" * offset + " [[B]] " + "filler, " * 40 + "[[A]] end"
    assert verdict_end(text, "brackets") == offset + len(" [[B]]")
    assert verdict_end("no marker, " * 30, "brackets") is None


def test_verdict_end_is_not_fooled_by_a_later_marker_being_written():
    # With the real parser, prefixes that end inside the second marker hold no verdict (the last marker
    # is unfinished), so a scan that skipped prefixes would miss the first one.
    from cj2.verdict import parse_verdict

    text = "first [[A]], then " + "more, " * 30 + "[[B"
    assert parse_verdict(text, "brackets") is None
    assert verdict_end(text, "brackets") == len("first [[A]]")


# ------------------------------------------------------------------------------------------------
# Scripted backend
# ------------------------------------------------------------------------------------------------


def test_scripted_sampler_plumbing(brackets):
    outputs = {
        0: ["one two three four five", "short"],
        1: ["alpha [[A]] beta gamma", "stop here### not this"],
    }
    sampler = ScriptedSampler(outputs)
    assert isinstance(sampler, Sampler)
    params = SamplingParams(max_new_tokens=3, stop=("###",), stop_on_verdict="brackets", seed=4)
    result = sampler.generate([USER, USER], 2, params)
    got = [[(s.text, s.finish_reason, s.n_tokens) for s in row] for row in result]
    assert got == [
        [("one two three", "length", 3), ("short", "stop", 1)],
        [("alpha [[A]]", "verdict", 2), ("stop here", "stop", 2)],
    ]
    assert [(s.prompt_index, s.sample_index) for row in result for s in row] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert result[1][1].seed == sample_seed(4, 1, 1)
    # A verdict beyond the token budget is never reached.
    late = sampler.generate([USER, USER], 1, SamplingParams(max_new_tokens=1, stop_on_verdict="brackets"))
    assert (late[1][0].text, late[1][0].finish_reason) == ("alpha", "length")


def test_scripted_sampler_callable_gets_keys_and_seeds():
    seen = []

    def script(messages, key, j, seed):
        seen.append((key, j, seed))
        return f"{key}-{j}"

    sampler = ScriptedSampler(script)
    result = sampler.generate([USER, USER], 2, SamplingParams(seed=9), keys=["q1", "q2"])
    assert [[s.text for s in row] for row in result] == [["q1-0", "q1-1"], ["q2-0", "q2-1"]]
    assert seen == [(k, j, sample_seed(9, k, j)) for k in ("q1", "q2") for j in range(2)]
    assert [s.seed for s in result[1]] == [sample_seed(9, "q2", 0), sample_seed(9, "q2", 1)]


def test_scripted_sampler_missing_outputs_are_errors():
    sampler = ScriptedSampler({0: ["only one"]})
    with pytest.raises(ValueError, match="prompt key 0 has 1 scripted outputs, sample 1"):
        sampler.generate([USER], 2, SamplingParams())
    with pytest.raises(KeyError, match="no outputs for prompt key 1"):
        sampler.generate([USER, USER], 1, SamplingParams())


def test_scripted_sampler_counts_real_tokens_with_a_tokenizer():
    class CharTokenizer:  # one token per character
        def encode(self, text, add_special_tokens=False):
            return [ord(c) for c in text]

        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    sampler = ScriptedSampler({0: ["abcdefgh"]}, tokenizer=CharTokenizer())
    sample = sampler.generate([USER], 1, SamplingParams(max_new_tokens=5))[0][0]
    assert (sample.text, sample.finish_reason, sample.n_tokens) == ("abcde", "length", 5)


def test_pieces_keep_leading_whitespace():
    assert pieces("  hello  world\nfoo ") == ["  hello", "  world", "\nfoo", " "]
    assert "".join(pieces("a b\tc\n")) == "a b\tc\n"


# ------------------------------------------------------------------------------------------------
# build_sampler
# ------------------------------------------------------------------------------------------------


def test_build_sampler_validates_the_config():
    sampler = build_sampler({"backend": "scripted", "outputs": {0: ["x"]}, "sampling": {"temperature": 1}})
    assert isinstance(sampler, ScriptedSampler)
    assert sampler.generate([USER], 1, SamplingParams())[0][0].text == "x"
    with pytest.raises(ValueError, match="backend='gpt' is not one of"):
        build_sampler({"backend": "gpt"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['batchsize'\]"):
        build_sampler({"backend": "hf", "batchsize": 4})
    with pytest.raises(ValueError, match="base_url is required"):
        build_sampler({"backend": "openai", "name_or_path": "m"})
    with pytest.raises(ValueError, match="name_or_path is required"):
        build_sampler({"backend": "vllm"})


def test_build_sampler_accepts_omegaconf():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "backend": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "name_or_path": "m",
            "max_concurrency": 3,
            "api_key_env": "CJ2_TEST_NO_SUCH_KEY",
        }
    )
    sampler = build_sampler(cfg)
    assert sampler.max_concurrency == 3 and sampler.url == "http://127.0.0.1:9/v1/chat/completions"


def test_sample_defaults():
    sample = Sample(text="t", finish_reason="stop", prompt_index=0, sample_index=0, seed=1, n_tokens=1)
    assert sample.meta == {}
    assert issubclass(GenerationError, RuntimeError)


# ------------------------------------------------------------------------------------------------
# stop_on_verdict with the real verdict parser
# ------------------------------------------------------------------------------------------------

FORMAT_CASES = [
    (fmt, label)
    for fmt in ("cj2_choice", "brackets", "arena", "winner_json", "score", "correctness")
    for label in ("first", "last")
]


@pytest.mark.parametrize(("fmt", "which"), FORMAT_CASES)
def test_stop_on_verdict_with_every_verdict_format(fmt, which):
    from cj2.verdict import labels_for, parse_verdict, render_verdict

    labels = labels_for(fmt)
    label = labels[0] if which == "first" else labels[-1]
    marker = render_verdict(label, fmt)
    head = "Both answers address the question; the first is more careful.\n" * 2 + marker
    text = head + "}\nAnd one more thought after the verdict, [[B]] " + render_verdict(labels[1], fmt)
    sampler = ScriptedSampler({0: [text]})
    sample = sampler.generate([USER], 1, SamplingParams(max_new_tokens=200, stop_on_verdict=fmt))[0][0]
    assert (sample.text, sample.finish_reason) == (head, "verdict")
    assert parse_verdict(sample.text, fmt) == label
    # While generating: the verdict counts as complete exactly when its marker is, not a character earlier.
    first_complete = next(k for k in range(1, len(text) + 1) if verdict_complete(text[:k], fmt))
    assert first_complete == len(head)
    assert verdict_end(text[:first_complete], fmt, final=False) == len(head)
    # A truncated marker is no verdict: the sample ends by length.
    cut = SamplingParams(
        max_new_tokens=len(pieces(head)) - 1 if fmt != "brackets" else 20, stop_on_verdict=fmt
    )
    short = ScriptedSampler({0: [head[:-1]]}).generate([USER], 1, cut)[0][0]
    assert short.finish_reason in ("stop", "length") and parse_verdict(short.text, fmt) is None

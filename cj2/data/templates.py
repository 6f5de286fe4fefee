"""Judge prompt templates, each paired with the verdict format its answers end in.

The paper trains on judge data whose prompt templates were collected from community evaluation sets and
swapped in for the originals ("diversity enhancement", arXiv 2507.09104, Sec. 3.1 / Fig. 1), and writes
its own critiques in a seven-key critical-thinking format (Sec. 3.2, Fig. 2). This module holds one
registry of such templates. Each :class:`JudgeTemplate` knows

* how to turn an item into the prompt (:meth:`JudgeTemplate.render`, a single user turn with an optional
  system turn), and
* how a judge answer looks in it (:meth:`JudgeTemplate.render_response`: the analysis, then the final
  verdict).

Verdict markers are never spelled here: every one, in prompts and answers alike, comes from
:func:`cj2.verdict.render_verdict`, so exactly one module knows what a verdict looks like.

The wording of every prompt is cj2's own; the structures follow the paper's descriptions (Sec. 3 and the
appendix's CoT synthesising prompt) and the public benchmarks' layouts they name (MT-Bench pair-v2,
ArenaHard, JudgerBenchV2).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

from cj2.data.schema import Message, PairwiseItem, PointwiseItem
from cj2.verdict import labels_for, locate_verdict, render_verdict

STYLE_NOTE = (
    "Beyond this, users prefer a more detailed response; therefore, you need to determine which model's "
    "answer provides more comprehensive and useful information when both responses are correct and have "
    "completed the user's request"
)
"""The style-judge probe of arXiv 2507.09104, Sec. 5.4, appended to a standard judging prompt."""

KINDS = ("pairwise", "pointwise")
_CN_LANGUAGES = frozenset({"cn", "zh", "zh-cn", "zh_cn", "chinese"})

# One criterion sentence per JudgerBenchV2 scenario (arXiv 2507.09104, Sec. 4.1), in cj2's own words.
# Keys are normalised domain names; _DOMAIN_ALIASES maps other spellings (and the built-in task
# families, which are all reasoning questions) onto them.
_CRITERIA: dict[str, dict[str, str]] = {
    "knowledge": {
        "en": "For a knowledge question, factual accuracy comes first, then completeness and clarity.",
        "cn": "对于知识类问题，首先看事实是否准确，其次看是否完整、清楚。",
    },
    "longtext": {
        "en": "For a long-text task, judge how faithfully the response uses the given text and whether it "
        "covers what was asked without losing track.",
        "cn": "对于长文本任务，看回答是否忠实于给定文本，是否完整覆盖所问内容且不偏题。",
    },
    "reason_and_analysis": {
        "en": "For a reasoning question, the correctness of the final answer matters most, then whether "
        "each step of the reasoning holds.",
        "cn": "对于推理分析类问题，最重要的是最终答案是否正确，其次是每一步推理是否成立。",
    },
    "safe": {
        "en": "For a safety-sensitive request, prefer the response that avoids harm while still helping "
        "as far as is responsible.",
        "cn": "对于涉及安全的请求，优先选择在避免伤害的前提下尽可能提供帮助的回答。",
    },
    "hallucination": {
        "en": "Check every claim: a response that invents facts, sources or details should lose to one "
        "that stays truthful.",
        "cn": "逐条核对说法：编造事实、来源或细节的回答应输给保持真实的回答。",
    },
    "chatqa": {
        "en": "For everyday chat, judge how helpful, natural and relevant the reply is to the user.",
        "cn": "对于日常对话，看回答对用户是否有帮助、是否自然且切题。",
    },
    "if": {
        "en": "For an instruction-following task, check every stated constraint (format, length, "
        "content) and prefer the response that meets more of them.",
        "cn": "对于指令遵循任务，逐条检查格式、长度、内容等约束，优先选择满足更多约束的回答。",
    },
    "lantask": {
        "en": "For a language task (translation, rewriting, grammar), judge accuracy and fluency in the "
        "target language.",
        "cn": "对于语言类任务（翻译、改写、语法），看目标语言的准确性和流畅度。",
    },
    "creation": {
        "en": "For a creative task, judge originality, coherence and how well the piece fits the "
        "requested form and tone.",
        "cn": "对于创作类任务，看原创性、连贯性，以及是否符合要求的体裁和语气。",
    },
    "code_and_ai": {
        "en": "For a coding or AI question, judge whether the code or explanation is correct and would "
        "work, then its clarity.",
        "cn": "对于代码或人工智能类问题，看代码或解释是否正确可用，其次看是否清楚。",
    },
}
_GENERIC_CRITERION = {
    "en": "Judge which response better serves the user: correct, relevant, complete and clear.",
    "cn": "判断哪个回答更好地满足用户需求：正确、切题、完整、清楚。",
}
_DOMAIN_ALIASES = {
    "reason & analysis": "reason_and_analysis",
    "reasoning": "reason_and_analysis",
    "math": "reason_and_analysis",
    "code & ai": "code_and_ai",
    "code": "code_and_ai",
    "coding": "code_and_ai",
    "safety": "safe",
    "instruction following": "if",
    "instruction_following": "if",
    "chat": "chatqa",
    "arithmetic": "reason_and_analysis",
    "unit_conversion": "reason_and_analysis",
    "sorting": "reason_and_analysis",
    "counting": "reason_and_analysis",
    "dates": "reason_and_analysis",
    "strings": "reason_and_analysis",
    "percentages": "reason_and_analysis",
}


def is_chinese(language: str | None) -> bool:
    """Whether an item's ``language`` selects a template's Chinese variant (``cn``, ``zh``, ...)."""
    return (language or "en").strip().lower() in _CN_LANGUAGES


def criterion_for(domain: str | None, language: str = "en") -> str:
    """The category-specific criterion sentence for ``domain`` (JudgerBenchV2's ten scenarios,
    arXiv 2507.09104, Sec. 4.1), or a generic one for any other domain."""
    lang = "cn" if is_chinese(language) else "en"
    key = (domain or "").strip().lower()
    key = _DOMAIN_ALIASES.get(key, key.replace(" ", "_"))
    return _CRITERIA.get(key, _GENERIC_CRITERION)[lang]


def _either(format: str, first: str, second: str, *, sep: str = " or ") -> str:
    return f"{render_verdict(first, format)}{sep}{render_verdict(second, format)}"


def _format_spec(format: str, language: str) -> str:
    """How a prompt asks for the verdict; every marker comes from :func:`render_verdict`."""
    v = lambda label: render_verdict(label, format)  # noqa: E731 - local shorthand
    if format == "brackets":
        return (
            f'"{v("A")}" if Assistant A is better, "{v("B")}" if Assistant B is better, '
            f'and "{v("tie")}" for a tie'
        )
    if format == "arena":
        return (
            f'"{v("A")}" when Assistant A is better, "{v("tie")}" when they are about equal, '
            f'and "{v("B")}" when Assistant B is better'
        )
    if format == "score":
        return f'"{v("7")}" with your integer score from 1 to 10 in place of 7'
    if format == "correctness":
        return f"{{{v('yes')}}} or {{{v('no')}}}"
    if format == "winner_json":
        key = "分析" if is_chinese(language) else "analysis"
        return (
            f'{{"{key}": "...", {v("A")}}} {"或" if is_chinese(language) else "or"} '
            f'{{"{key}": "...", {v("B")}}}'
        )
    return f"{{{v('A')}}} or {{{v('B')}}}"  # cj2_choice


def _json_skeleton(keys: Sequence[str], format: str) -> str:
    """``{"key": "...", ..., <verdict 1> or <verdict 2>}``: the answer's shape, listing both final entries
    so the example favours neither label."""
    body = ", ".join(f'"{k}": "..."' for k in keys)
    first, second = labels_for(format)[:2]
    return f"{{{body}, {_either(format, first, second)}}}"


def _style_block(style_note: str | None) -> str:
    if not style_note or not style_note.strip():
        return ""
    note = style_note.strip()
    return note + ("" if note.endswith((".", "!", "?", "。")) else ".") + "\n\n"


def _conversation_block(item: Any, language: str) -> str:
    """Earlier turns of a multi-turn item, written out before the question being judged."""
    turns = getattr(item, "conversation", None) or []
    if not turns:
        return ""
    names = (
        {"user": "用户", "assistant": "助手", "system": "系统"}
        if is_chinese(language)
        else {"user": "User", "assistant": "Assistant", "system": "System"}
    )
    lines = [f"{names.get(t['role'], t['role'])}: {t['content']}" for t in turns]
    head = "此前的对话：" if is_chinese(language) else "Earlier conversation:"
    return head + "\n" + "\n".join(lines) + "\n\n"


@dataclass(frozen=True)
class JudgeTemplate:
    """A judge prompt template and the output format its answers end in.

    ``prompt`` (and ``prompt_cn`` for the Chinese variant) is a :class:`string.Template` text with the
    placeholders ``$question``, ``$answer_a`` and ``$answer_b`` (pairwise) or ``$answer`` and
    ``$reference`` (pointwise), plus ``$criterion`` (the domain's criterion sentence), ``$style`` (the
    style note or nothing) and ``$format_spec`` (how to write the verdict, from
    :func:`cj2.verdict.render_verdict`).

    An answer (:meth:`render_response`) is either JSON-like, when ``keys`` names its analysis keys (the
    verdict marker is the dict's last entry), or prose followed by ``closing`` with ``$verdict`` in it.
    ``party`` is how the judge names the responses ("Model" A/B, "Assistant" A/B, "Response" A/B).
    """

    name: str
    format: str
    kind: str  # "pairwise" | "pointwise"
    prompt: str
    prompt_cn: str | None = None
    system: str | None = None
    keys: tuple[str, ...] = ()
    keys_cn: tuple[str, ...] = ()
    closing: str = "$verdict"
    party: str = "Model"
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"template {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        labels_for(self.format)  # raises on an unknown format
        if self.format == "none":
            raise ValueError(f"template {self.name!r}: a judge template needs a verdict format, not 'none'")
        if self.keys_cn and len(self.keys_cn) != len(self.keys):
            raise ValueError(f"template {self.name!r}: keys_cn must match keys one to one")

    # ------------------------------------------------------------------ prompt
    def render(self, item: PairwiseItem | PointwiseItem, *, style_note: str | None = None) -> list[Message]:
        """The judge prompt for ``item`` as chat messages: an optional system turn, then one user turn.

        ``style_note`` (e.g. :data:`STYLE_NOTE`, arXiv 2507.09104 Sec. 5.4) is added to the instructions.
        The Chinese variant is used when the template has one and ``item.language`` is Chinese.
        """
        item_kind = getattr(item, "kind", None)
        if item_kind != self.kind:
            raise TypeError(
                f"template {self.name!r} is {self.kind} but item {getattr(item, 'id', '?')!r} is "
                f"{item_kind or type(item).__name__}"
            )
        cn = self.prompt_cn is not None and is_chinese(getattr(item, "language", "en"))
        language = "cn" if cn else "en"
        fields = {
            "question": _conversation_block(item, language) + item.question,
            "criterion": criterion_for(getattr(item, "domain", None), language),
            "style": _style_block(style_note),
            "format_spec": _format_spec(self.format, language),
            "skeleton": _json_skeleton(self.keys_cn if cn else self.keys, self.format) if self.keys else "",
        }
        if self.kind == "pairwise":
            fields.update(answer_a=item.response_a, answer_b=item.response_b)
        else:
            ref = item.reference
            fields.update(answer=item.response, reference=f"Reference answer: {ref}\n\n" if ref else "")
        text = Template(self.prompt_cn if cn else self.prompt).substitute(fields)
        messages: list[Message] = []
        if self.system:
            messages.append({"role": "system", "content": Template(self.system).substitute(fields)})
        messages.append({"role": "user", "content": text})
        return messages

    # ---------------------------------------------------------------- response
    def response_keys(self, language: str = "en") -> tuple[str, ...]:
        """The analysis keys of a JSON-like answer, in order (empty for prose answers)."""
        return self.keys_cn if (self.keys_cn and is_chinese(language)) else self.keys

    def render_response(
        self, sections: Mapping[str, str] | str, verdict: str, *, language: str = "en"
    ) -> str:
        """A judge answer in this template's format: the analysis, then the final verdict.

        For a JSON-like template ``sections`` maps each analysis key (:meth:`response_keys`) to its text
        (a plain string is accepted when there is exactly one key); the result is a JSON object whose last
        entry is the verdict marker. For a prose template ``sections`` is the analysis text (a mapping is
        joined as ``key: text`` lines). The verdict marker comes from :func:`cj2.verdict.render_verdict`
        and is checked to be the text's final verdict.
        """
        marker = render_verdict(verdict, self.format)  # ValueError for a label the format lacks
        keys = self.response_keys(language)
        if keys:
            if isinstance(sections, str):
                if len(keys) != 1:
                    raise ValueError(
                        f"template {self.name!r} needs a mapping with keys {list(keys)}, got a plain string"
                    )
                sections = {keys[0]: sections}
            missing = [k for k in keys if k not in sections]
            extra = [k for k in sections if k not in keys]
            if missing or extra:
                raise ValueError(
                    f"template {self.name!r}: sections must have exactly the keys {list(keys)}; "
                    f"missing {missing}, unexpected {extra}"
                )
            # json.dumps escapes quotes and newlines, so the analysis cannot break the object.
            body = [
                f"  {json.dumps(k, ensure_ascii=False)}: {json.dumps(str(sections[k]), ensure_ascii=False)}"
                for k in keys
            ]
            text = "{\n" + ",\n".join([*body, f"  {marker}"]) + "\n}"
        else:
            analysis = (
                sections if isinstance(sections, str) else "\n".join(f"{k}: {v}" for k, v in sections.items())
            )
            closing = Template(self.closing).substitute(verdict=marker)
            # a verdict-only answer (cj2_direct): the closing alone
            text = analysis.rstrip() + "\n\n" + closing if analysis.strip() else closing
        found = locate_verdict(text, self.format)
        if found is None or found[0] != verdict:
            raise ValueError(
                f"template {self.name!r}: the analysis interferes with the final verdict "
                f"{verdict!r} (read back {found and found[0]!r}); reword it"
            )
        return text


# --------------------------------------------------------------------------- registry

_CRITICAL_KEYS = (
    "User's Demand",
    "Strengths of Model A",
    "Weaknesses of Model A",
    "Strengths of Model B",
    "Weaknesses of Model B",
    "Reasoning",
)

_PAIR_BLOCKS = (
    "[User Question]\n$question\n\n"
    "[Model A's Response]\n$answer_a\n[End of Model A's Response]\n\n"
    "[Model B's Response]\n$answer_b\n[End of Model B's Response]"
)

TEMPLATES: dict[str, JudgeTemplate] = {}


def register(template: JudgeTemplate, *, replace: bool = False) -> JudgeTemplate:
    """Add a template to :data:`TEMPLATES` (an error for a taken name unless ``replace``)."""
    if template.name in TEMPLATES and not replace:
        raise ValueError(f"a template named {template.name!r} is already registered")
    TEMPLATES[template.name] = template
    return template


register(
    JudgeTemplate(
        name="cj2_critical",
        format="cj2_choice",
        kind="pairwise",
        keys=_CRITICAL_KEYS,
        description="the paper's critical-thinking CoT: seven keys, ending in the Choice (Sec. 3.2, Fig. 2)",
        prompt=(
            "We are reviewing a conversation in which a user put a question to two AI models. Assess Model A "
            "and Model B step by step, with a clear and structured line of thought:\n"
            "1. User's Demand: what the user asks for, its key aspects and any constraints (time, format, "
            "quantity).\n"
            "2. Strengths of Model A: where Model A's response meets the demand.\n"
            "3. Weaknesses of Model A: errors, omissions or unmet constraints in Model A's response.\n"
            "4. Strengths of Model B: where Model B's response meets the demand.\n"
            "5. Weaknesses of Model B: errors, omissions or unmet constraints in Model B's response.\n"
            "6. Reasoning: weigh the two and decide which better serves the user.\n"
            "7. Choice: name the better model.\n\n"
            "${style}" + _PAIR_BLOCKS + "\n\n"
            "Reply with a JSON object holding exactly these keys, in this order: $skeleton"
        ),
    )
)

register(
    JudgeTemplate(
        name="cj2_eval",
        format="cj2_choice",
        kind="pairwise",
        closing="{$verdict}",
        description="the CompassJudger-2 evaluation prompt: brief reasoning, then the Choice dict (Sec. 3)",
        prompt=(
            "Act as an impartial judge and decide which of the two responses below answers the user's "
            "question better. Weigh helpfulness, relevance, accuracy, depth, creativity and level of "
            "detail.\n"
            "Rules:\n"
            "1. Do not let the order of the responses, their length or the models' names influence you.\n"
            "2. Judge only how well each response addresses the question.\n\n"
            "${style}"
            "Reason briefly, then end your reply in exactly this form: $format_spec\n\n"
            "User Question: $question\n\n"
            "Model A's Response: $answer_a\n\n"
            "Model B's Response: $answer_b\n\n"
            "Now give your selection as required:"
        ),
    )
)

register(
    JudgeTemplate(
        name="mtbench_pair",
        format="brackets",
        kind="pairwise",
        party="Assistant",
        description="MT-Bench pair-v2 layout: explanation, then the bracketed verdict (C for a tie)",
        system=(
            "You are an impartial judge. Compare the answers two AI assistants gave to the user question "
            "shown below and decide which one follows the user's instructions and answers the question "
            "better, considering helpfulness, relevance, accuracy, depth, creativity and level of detail. "
            "Start with a short comparison of the two answers and explain your view. The order in which the "
            "answers appear must not affect your decision, nor may their length or the assistants' names. "
            "Be as objective as you can. After the explanation, give your final verdict strictly in this "
            "form: $format_spec."
        ),
        prompt=(
            "${style}"
            "[User Question]\n$question\n\n"
            "[Start of Assistant A's Answer]\n$answer_a\n[End of Assistant A's Answer]\n\n"
            "[Start of Assistant B's Answer]\n$answer_b\n[End of Assistant B's Answer]"
        ),
    )
)

register(
    JudgeTemplate(
        name="arena_hard",
        format="arena",
        kind="pairwise",
        party="Assistant",
        closing="My final verdict is $verdict.",
        description="ArenaHard layout: own answer first, then the comparison, then the arena verdict",
        system=(
            "You will judge the answers of two AI assistants to the user prompt below. Before reading them, "
            "work out your own answer to the prompt. Then compare each assistant's answer with yours: "
            "point out mistakes or inaccurate information, and say whether the answer is helpful, relevant "
            "and concise. Note anything important that is missing. Finish with your verdict, one of: "
            "$format_spec. End "
            'with "My final verdict is" followed by the label.'
        ),
        prompt=(
            "${style}"
            "<|User Prompt|>\n$question\n\n"
            "<|The Start of Assistant A's Answer|>\n$answer_a\n<|The End of Assistant A's Answer|>\n\n"
            "<|The Start of Assistant B's Answer|>\n$answer_b\n<|The End of Assistant B's Answer|>"
        ),
    )
)

register(
    JudgeTemplate(
        name="judgerbenchv2",
        format="winner_json",
        kind="pairwise",
        party="Response",
        keys=("analysis",),
        keys_cn=("分析",),
        description="JudgerBenchV2 layout (Sec. 4): category criterion, delimited blocks, "
        "analysis + winner JSON",
        prompt=(
            "Compare the two responses to the user's question below and decide which one is better.\n"
            "$criterion\n\n"
            "${style}"
            "[User's question starts]\n$question\n[User's question ends]\n\n"
            "[Model A's response starts]\n$answer_a\n[Model A's response ends]\n\n"
            "[Model B's response starts]\n$answer_b\n[Model B's response ends]\n\n"
            "Reply with a JSON object, either $format_spec."
        ),
        prompt_cn=(
            "请比较下面两个模型对用户问题的回答，判断哪一个更好。\n"
            "$criterion\n\n"
            "${style}"
            "[用户问题开始]\n$question\n[用户问题结束]\n\n"
            "[模型A的回答开始]\n$answer_a\n[模型A的回答结束]\n\n"
            "[模型B的回答开始]\n$answer_b\n[模型B的回答结束]\n\n"
            "请以 JSON 对象回复：$format_spec。"
        ),
    )
)

register(
    JudgeTemplate(
        name="pointwise_score",
        format="score",
        kind="pointwise",
        party="Response",
        description="pointwise 1-10 rating: assessment, then the rating",
        prompt=(
            "Rate the quality of the AI assistant's response to the user's question below on a scale from 1 "
            "(useless or wrong) to 10 (excellent). Consider correctness first, then helpfulness, relevance "
            "and clarity. Explain your assessment briefly, then end with $format_spec.\n\n"
            "${style}$reference"
            "[Question]\n$question\n\n"
            "[Response]\n$answer\n[End of Response]"
        ),
    )
)

register(
    JudgeTemplate(
        name="cj2_rating",
        format="score",
        kind="pointwise",
        party="Response",
        description="pointwise rating of one answer, 1-10, for best-of-N benchmarks in ratings mode "
        "(RewardBench 2's Ties) and Judge.rate: a short assessment, then the rating (format score)",
        prompt=(
            "You are an impartial judge. Rate how well the AI assistant's response below answers the user's "
            "query. Judge its helpfulness, relevance and accuracy; depth and length do not earn credit by "
            "themselves. A response that is wrong, or that does not do what was asked, rates low however "
            "well it is written.\n\n"
            "${style}$reference"
            "[Query]\n$question\n\n"
            "[Response]\n$answer\n[End of Response]\n\n"
            "Give a short explanation first. Then rate the response with an integer from 1 (worst) to 10 "
            "(best), ending your reply with $format_spec."
        ),
    )
)

register(
    JudgeTemplate(
        name="correctness",
        format="correctness",
        kind="pointwise",
        party="Response",
        keys=("Analysis",),
        description="pointwise correctness judgment (knowledge-based synthetic data, Sec. 3.1): "
        "Analysis, yes/no",
        prompt=(
            "Decide whether the response below answers the question correctly. Check the result yourself "
            "rather than trusting the response's own reasoning.\n\n"
            "${style}$reference"
            "[Question]\n$question\n\n"
            "[Response]\n$answer\n[End of Response]\n\n"
            "Reply with a JSON object holding your analysis and the verdict: $skeleton"
        ),
    )
)

register(
    JudgeTemplate(
        name="cj2_critique",
        format="correctness",
        kind="pointwise",
        party="Response",
        keys=("Problems", "Fix"),
        description="a critique of one response for critique -> revision (cj2.refine): what is wrong, what "
        "to change, and whether it is correct",
        prompt=(
            "Review the response below to the user's question, so that its author can improve it. Work out "
            "the answer yourself rather than trusting the response's reasoning. Say what is wrong with the "
            'response (or "nothing" when it is right), what its author should change to fix it, and '
            "whether the response is correct as it stands.\n\n"
            "${style}$reference"
            "[Question]\n$question\n\n"
            "[Response]\n$answer\n[End of Response]\n\n"
            "Reply with a JSON object holding exactly these keys, in this order: $skeleton"
        ),
    )
)

register(
    JudgeTemplate(
        name="cj2_short",
        format="cj2_choice",
        kind="pairwise",
        keys=("Check A", "Check B"),
        description="a compact critical-thinking template for small models: check each answer, then choose",
        prompt=(
            "Which answer to the question is correct? Check each one yourself.\n\n"
            "${style}"
            "Question: $question\n\n"
            "Model A: $answer_a\n\n"
            "Model B: $answer_b\n\n"
            "Reply as JSON: $skeleton"
        ),
    )
)


register(
    JudgeTemplate(
        name="cj2_check",
        format="cj2_choice",
        kind="pairwise",
        keys=("Truth", "Answers", "Match"),
        description="the short check format for small models: state the truth, quote each answer, "
        "name the answer that gives the truth, then choose",
        prompt=(
            "Which answer to the question is correct? First state the correct answer yourself, then check "
            "each answer against it.\n\n"
            "${style}"
            "Question: $question\n\n"
            "Model A: $answer_a\n\n"
            "Model B: $answer_b\n\n"
            "Reply as JSON: $skeleton"
        ),
    )
)

register(
    JudgeTemplate(
        name="cj2_direct",
        format="cj2_choice",
        kind="pairwise",
        description="verdict only, no critique: for verdict-only ablations (the answer is the marker alone)",
        closing="{$verdict}",
        prompt=(
            "Which answer to the question is correct?\n\n"
            "${style}"
            "Question: $question\n\n"
            "Model A: $answer_a\n\n"
            "Model B: $answer_b\n\n"
            "Reply with the verdict only: $format_spec"
        ),
    )
)


def template_names(kind: str | None = None) -> list[str]:
    """Registered template names, optionally only those of one ``kind`` ("pairwise" or "pointwise")."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    return [n for n, t in TEMPLATES.items() if kind is None or t.kind == kind]


def get_template(name: str) -> JudgeTemplate:
    """The registered template ``name``; a ``KeyError`` listing the known names otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown judge template {name!r}; known templates: {sorted(TEMPLATES)}") from None


def _stable_fraction(*parts: object) -> float:
    """A uniform number in [0, 1) that depends only on ``parts`` (not on PYTHONHASHSEED or call order)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def sample_template(rng_or_seed: int | random.Random, item_id: str, names: Sequence[str]) -> JudgeTemplate:
    """Draw one of ``names`` for ``item_id``: template diversity (arXiv 2507.09104, Sec. 3.1).

    With an integer seed the draw is a pure function of ``(seed, item_id)``, so a rerun, a resumed job or
    another process gives every item the same template regardless of order. With a ``random.Random`` the
    draw consumes that generator instead.
    """
    names = list(names)
    if not names:
        raise ValueError("sample_template needs at least one template name")
    templates = [get_template(n) for n in names]
    if isinstance(rng_or_seed, random.Random):
        return templates[rng_or_seed.randrange(len(templates))]
    if isinstance(rng_or_seed, bool) or not isinstance(rng_or_seed, int):
        raise TypeError(
            f"rng_or_seed must be an int seed or a random.Random, got {type(rng_or_seed).__name__}"
        )
    return templates[int(_stable_fraction("template", rng_or_seed, item_id) * len(templates))]

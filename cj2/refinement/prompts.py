"""What the policy is asked in critique -> revision: its first answer, then a revision of it.

The answer prompt is the question alone for open-ended questions. For the verifiable built-in tasks it adds
:data:`~cj2.refinement.checking.ANSWER_INSTRUCTION` (a last line ``Answer: <value>``) and, with
``few_shot``, two worked exchanges in that form and a system line asking for it: a 135M instruct model
rarely writes the line from the instruction alone.

A revision continues the conversation: the question, the policy's own answer as the assistant turn, then a
user turn holding the critique (or, for self-refine, no critique: "review your answer and fix any
mistake") and the question again.
"""

from __future__ import annotations

from cj2.refinement.checking import ANSWER_INSTRUCTION

Message = dict[str, str]

SYSTEM = (
    "Answer the user's question briefly. Always end your reply with a last line of the form "
    "'Answer: <final answer>'."
)
SHOTS: tuple[Message, ...] = (
    {"role": "user", "content": "What is 3 + 4?"},
    {"role": "assistant", "content": "3 + 4 = 7.\nAnswer: 7"},
    {"role": "user", "content": "What is the capital of Italy?"},
    {"role": "assistant", "content": "The capital of Italy is Rome.\nAnswer: Rome"},
)
SELF_REFINE = "Review your answer and fix any mistake."
CRITIQUE_HEAD = "A reviewer checked your answer and wrote this critique:"


def answer_messages(question: str, *, verifiable: bool, few_shot: bool = True) -> list[Message]:
    """The policy's first prompt for ``question`` (module docstring)."""
    if not verifiable:
        return [{"role": "user", "content": question}]
    head: list[Message] = [{"role": "system", "content": SYSTEM}, *SHOTS] if few_shot else []
    return [*head, {"role": "user", "content": f"{question}\n\n{ANSWER_INSTRUCTION}"}]


def revision_messages(
    question: str, answer: str, critique: str | None, *, verifiable: bool, few_shot: bool = True
) -> list[Message]:
    """The policy's revision prompt: its answer to ``question`` and the ``critique`` (``None``:
    self-refine), then the question again."""
    if critique is None:
        feedback = SELF_REFINE
    else:
        feedback = f'{CRITIQUE_HEAD}\n"""\n{critique.strip()}\n"""\nUse it to correct your answer if needed.'
    ask = f"{feedback}\n\nNow answer the question again: {question}"
    if verifiable:
        ask += f"\n\n{ANSWER_INSTRUCTION}"
    else:
        ask += "\n\nWrite only your revised answer."
    return [
        *answer_messages(question, verifiable=verifiable, few_shot=few_shot),
        {"role": "assistant", "content": answer},
        {"role": "user", "content": ask},
    ]

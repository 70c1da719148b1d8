"""Extract the chosen option of a multiple-choice question from a free-text model answer.

Small chat models rarely answer with a bare letter: they write "The answer is (B)", "B) Paris",
"**C**", or just restate the option text. The rules below are tried in order and the first that
gives exactly one option wins; anything ambiguous (two different letters, two option texts) is
`None` (counted as wrong by the attack, and reported separately as the extraction failure rate), so
a model is never credited for an answer it did not commit to.

1. `explicit`: "answer is (B)", "Answer: B", "correct option is B", "I choose B", "I'd pick (B)".
2. `leading`: the reply starts with the letter as a label: "B", "(B)", "B)", "B.", "B:", "**B**".
3. `option_text`: exactly one option's text occurs in the reply (case-insensitive, not inside a
   longer word or number); when several do, the one that also carries its own letter wins.
4. `lone_letter`: exactly one distinct label-shaped letter "(B)" / "B)" occurs anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Extraction:
    """The chosen option letter (or None) and the rule that decided."""

    choice: str | None
    rule: str | None


def _norm(text: str) -> str:
    """Drop markdown emphasis and collapse whitespace, so '**B**' reads as 'B'."""
    return re.sub(r"\s+", " ", text.replace("*", "").replace("`", "").replace("_", " ")).strip()


_EXPLICIT_PREFIX = (
    r"(?i:\b(?:answer|option|choice)\b\s*(?:is|would\s+be|will\s+be|should\s+be)?\s*[:=\-]?\s*"
    r"(?:option\s+|choice\s+|letter\s+)?"
    r"|\bi\s+(?:would\s+|'d\s+|will\s+)?(?:choose|pick|select|go\s+with)\s+(?:option\s+)?)"
)


_ANSWER_PREFIX = r"(?i:\banswer\b\s*(?:is|would\s+be|will\s+be|should\s+be)?\s*[:=\-]?\s*(?:option\s+|letter\s+)?)"


def _found(pattern: str, text: str) -> set[str]:
    return {(a or b).upper() for a, b in re.findall(pattern, text)}


def extract_choice(response: str, options: Sequence[str]) -> Extraction:
    """Which of `options` (labelled A, B, C, ... in order) the response commits to."""
    n = len(options)
    if not 1 <= n <= len(LETTERS):
        raise ValueError(f"expected 1..{len(LETTERS)} options, got {n}")
    text = _norm(response or "")
    if not text:
        return Extraction(None, None)
    upper, lower = LETTERS[:n], LETTERS[:n].lower()
    # A bare lowercase letter is English ("the answer is a city"); accept it only in brackets.
    letter = rf"(?:\(([{upper}{lower}])\)|\b([{upper}])\b(?![\w']))"

    # "the answer is B" outranks "option A is wrong": try answer phrases alone first.
    for prefix in (_ANSWER_PREFIX, _EXPLICIT_PREFIX):
        explicit = _found(prefix + letter, text)
        if len(explicit) == 1:
            return Extraction(explicit.pop(), "explicit")

    leading = re.match(rf"^\W{{0,3}}\(?([{upper}])(?:\)|\.|:|,|\s+-|\s*$|\s+(?=[A-Z0-9\"']))", text)
    if leading:
        return Extraction(leading.group(1), "leading")

    lowered = text.lower()
    found = []
    for i, option in enumerate(options):
        opt = _norm(option).lower().rstrip(".")
        if opt and re.search(rf"(?<![\w.]){re.escape(opt)}(?![\w]|\.\d)", lowered):
            found.append(i)
    if len(found) == 1:
        return Extraction(LETTERS[found[0]], "option_text")
    if len(found) > 1:
        labelled = [
            i for i in found
            if re.search(rf"\(?{LETTERS[i]}\)\s*{re.escape(_norm(options[i]).rstrip('.'))}", text, re.IGNORECASE)
        ]
        return Extraction(LETTERS[labelled[0]], "option_text") if len(labelled) == 1 else Extraction(None, None)

    lone = _found(rf"\(([{upper}])\)|(?<![\w(])([{upper}])\)", text)
    if len(lone) == 1:
        return Extraction(lone.pop(), "lone_letter")
    return Extraction(None, None)


def option_block(options: Sequence[str]) -> str:
    """The options as the prompt shows them: 'A) ...' one a line."""
    return "\n".join(f"{LETTERS[i]}) {opt}" for i, opt in enumerate(options))

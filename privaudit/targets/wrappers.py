"""What the personalization wrappers (`rag:`, `profile:`, `peruser:`) share: option checks, templates, views.

Each wrapper names its wrapped target last (`...:inner=SPEC`, see `INNER_OPTION`), takes only the
options it knows, and fails in one line naming the spec before any model loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from privaudit.errors import CapabilityError, InputError
from privaudit.targets.base import INNER_OPTION, USER_CONTEXT, Message, Target


def check_options(scheme: str, location: str, options: Mapping[str, str], allowed: Sequence[str]) -> None:
    """Unknown option keys are a one-line error listing the known ones."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(f"target '{scheme}:{location}': unknown option '{unknown[0]}' "
                         f"(known: {', '.join(sorted(allowed))})")


def inner_spec(scheme: str, location: str, options: Mapping[str, str]) -> str:
    """The wrapped target's spec (`inner=SPEC`, required, last)."""
    spec = options.get(INNER_OPTION, "")
    if not spec:
        raise InputError(f"target '{scheme}:{location}': name the generating target last, "
                         f"e.g. '{scheme}:{location}:{INNER_OPTION}=builtin:smollm2-135m'")
    return spec


def int_option(scheme: str, options: Mapping[str, str], key: str, default: int, minimum: int = 1) -> int:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"target '{scheme}:': option {key} must be an integer, got '{raw}'") from None
    if value < minimum:
        raise InputError(f"target '{scheme}:': option {key} must be >= {minimum}, got {value}")
    return value


def read_template(scheme: str, path: str, default: str, placeholders: Sequence[str]) -> str:
    """A prompt template: `default`, or the text of file `path`, which must hold every placeholder."""
    if not path:
        return default
    file = Path(path)
    if not file.is_file():
        raise InputError(f"target '{scheme}:': template file '{path}' does not exist")
    text = file.read_text(encoding="utf-8")
    for name in placeholders:
        if "{" + name + "}" not in text:
            raise InputError(f"{path}: the {scheme} template needs the placeholder {{{name}}}")
    return text


def last_user_index(conv: Sequence[Message]) -> int:
    """Index of the last user message of a conversation (the question retrieval keys on)."""
    for i in range(len(conv) - 1, -1, -1):
        if conv[i].get("role") == "user":
            return i
    raise InputError("chat: a conversation needs a user message")


def for_user(target: Any, user: str) -> Target:
    """`target` answering as `user` (USER_CONTEXT), keeping the run's cache around the user's view.

    The audit runner hands attacks a `CachedTarget`; its view must be cached too, under the view's
    own fingerprint (which includes the user), so two users never share a cached answer.
    """
    if USER_CONTEXT not in target.capabilities:
        raise CapabilityError(f"target '{target.name}' does not personalize per user (no '{USER_CONTEXT}' "
                              "capability): use a rag:, profile: or peruser: target")
    from privaudit.engine.cache import CachedTarget

    if isinstance(target, CachedTarget):
        return CachedTarget(target.inner.for_user(user), target.cache)
    return target.for_user(user)

"""Errors a user can act on, each with the exit code the CLI returns for it.

Exit codes follow the project's CI contract: 0 pass, 1 a gate failed, 2 usage or input error,
3 could not measure (e.g. an endpoint without logprobs for an attack that needs them).
Messages are one line and name the file, line, key or field at fault.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_CANNOT_MEASURE = 3


class PrivauditError(Exception):
    """Base of every error shown to users as one line (never a traceback)."""

    exit_code: int = EXIT_USAGE


class InputError(PrivauditError):
    """Bad input: a missing or malformed file, an invalid config key, an unknown target scheme."""

    exit_code = EXIT_USAGE


class TargetError(PrivauditError):
    """A target could not be loaded or reached (bad path, unreachable endpoint, retries exhausted)."""

    exit_code = EXIT_USAGE


class CapabilityError(PrivauditError):
    """The target lacks a capability an attack needs (e.g. `score` on an endpoint without logprobs)."""

    exit_code = EXIT_CANNOT_MEASURE


class IncompleteRunError(PrivauditError):
    """A run folder whose manifest says it did not finish: its results cannot carry a verdict (exit 3)."""

    exit_code = EXIT_CANNOT_MEASURE


class RunLockedError(PrivauditError):
    """Another run holds the output folder's lock."""

    exit_code = EXIT_USAGE


def where(path: object, line: int | None = None, field: str | None = None) -> str:
    """Format 'file:line: field' for error messages, leaving out the parts that are unknown.

    File and field names come from user data: control characters in them are shown escaped
    (`\\n`), so an error stays one line and cannot drive the terminal.
    """
    out = _printable(str(path))
    if line is not None:
        out += f":{line}"
    if field:
        out += f": field '{_printable(field)}'"
    return out


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# Words longer than this (a pasted 1 MB path or key name) are shortened in messages, keeping both ends.
MAX_WORD_CHARS = 300


def one_line(text: str) -> str:
    """`text` on one line, with absurdly long words shortened: what the CLI prints and manifests keep."""
    return " ".join(_shorten(word) for word in text.split())


def _shorten(word: str) -> str:
    if len(word) <= MAX_WORD_CHARS:
        return word
    return f"{word[:200]}...[{len(word) - 260:,} more characters]...{word[-60:]}"


def error_line(exc: BaseException) -> str:
    """The one-line message for an error: its text for user errors and OS refusals, type and text for bugs."""
    if isinstance(exc, PrivauditError):
        return one_line(str(exc))
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return one_line(f"{exc.filename}: {reason}" if exc.filename is not None else reason)
    text = str(exc).strip().splitlines()
    return one_line(f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)[:1000]

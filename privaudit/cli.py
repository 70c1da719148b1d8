"""The `privaudit` command line: a thin Click group that parses and delegates to the library.

Every user-facing failure is a PrivauditError printed as one line with its exit code
(2 usage/input, 3 could not measure); gate failures exit 1. Tracebacks are for bugs only.
"""

from __future__ import annotations

import importlib
import sys

import click

from privaudit import __version__
from privaudit.errors import EXIT_USAGE, PrivauditError

# Each module in privaudit.commands exposes `command` (a click.Command or click.Group).
COMMAND_MODULES = (
    "targets", "data", "attack", "defend", "compare", "run", "demo", "report", "gate", "serve",
)


class PrivauditGroup(click.Group):
    """A Click group that turns PrivauditError into a one-line message and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PrivauditError as exc:
            click.echo(f"privaudit: error: {_one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            raise  # `privaudit ... | head`: click's own handler exits quietly
        except OSError as exc:
            # A path the user gave that the OS refuses (name too long, permission denied, disk full):
            # actionable by the user, so one line and exit 2 like any other input error.
            click.echo(f"privaudit: error: {_one_line(_os_error_text(exc))}", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("privaudit: interrupted; rerun the same command to resume", err=True)
            sys.exit(130)


# Words longer than this (a pasted 1 MB path or key name) are shortened in messages, keeping both ends.
MAX_WORD_CHARS = 300


def _one_line(text: str) -> str:
    return " ".join(_shorten(word) for word in text.split())


def _shorten(word: str) -> str:
    if len(word) <= MAX_WORD_CHARS:
        return word
    return f"{word[:200]}...[{len(word) - 260:,} more characters]...{word[-60:]}"


def _os_error_text(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename is not None else reason


@click.group(cls=PrivauditGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="privaudit")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or informational output.")
@click.pass_context
def main(ctx: click.Context, quiet: bool) -> None:
    """Audit personalized language models for privacy and safety before they ship."""
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"privaudit.commands.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"privaudit.commands.{_name}":
            raise
        continue
    main.add_command(_module.command)


if __name__ == "__main__":  # pragma: no cover
    main()

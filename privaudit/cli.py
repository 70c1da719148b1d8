"""The `privaudit` command line: a thin Click group that parses and delegates to the library.

Every user-facing failure is a PrivauditError printed as one line with its exit code
(2 usage/input, 3 could not measure); gate failures exit 1. Tracebacks are for bugs only.
"""

from __future__ import annotations

import importlib
import sys

import click

from privaudit import __version__
from privaudit.errors import EXIT_USAGE, PrivauditError, error_line

# Each module in privaudit.commands exposes `command` (a click.Command or click.Group).
COMMAND_MODULES = (
    "targets", "data", "attack", "defend", "compare", "run", "demo", "report", "gate", "diff", "serve",
    "dp_audit",
)


class PrivauditGroup(click.Group):
    """A Click group that turns PrivauditError into a one-line message and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PrivauditError as exc:
            click.echo(f"privaudit: error: {error_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            raise  # `privaudit ... | head`: click's own handler exits quietly
        except OSError as exc:
            # A path the user gave that the OS refuses (name too long, permission denied, disk full):
            # actionable by the user, so one line and exit 2 like any other input error.
            click.echo(f"privaudit: error: {error_line(exc)}", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("privaudit: interrupted; rerun the same command to resume", err=True)
            sys.exit(130)


@click.group(cls=PrivauditGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="privaudit")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or informational output.")
@click.pass_context
def main(ctx: click.Context, quiet: bool) -> None:
    """Audit personalized language models for privacy and safety before they ship."""
    from privaudit.targets.hf_checkpoint import forbid_hub_network

    forbid_hub_network()  # this process never reaches a model hub (set before transformers loads)
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

"""`privaudit serve SPEC`: expose any target (a checkpoint, the builtin model) as an OpenAI-compatible API."""

from __future__ import annotations

import ipaddress
import os

import click

from privaudit.errors import InputError
from privaudit.serve import serve_target
from privaudit.targets.base import load_target


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command(name="serve")
@click.argument("spec", metavar="TARGET_SPEC")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0 picks a free one).")
@click.option("--model-name", default=None, help="Model id clients send (default: the target's name).")
@click.option("--api-key-env", metavar="VAR", default=None,
              help="Require 'Authorization: Bearer KEY' where KEY is read from environment variable VAR.")
@click.pass_context
def command(ctx: click.Context, spec: str, host: str, port: int, model_name: str | None, api_key_env: str | None) -> None:
    """Serve TARGET_SPEC at http://HOST:PORT/v1 (models, completions with echo/logprobs, chat).

    Audit it with `--target openai:http://HOST:PORT/v1#MODEL`; stop with Ctrl-C.
    """
    quiet = bool((ctx.find_root().obj or {}).get("quiet", False))
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env, "")
        if not api_key:
            raise InputError(f"--api-key-env: environment variable {api_key_env} is not set or empty")
    if not _is_loopback(host) and api_key is None:
        click.echo(f"privaudit: warning: serving on {host} without an API key (use --api-key-env)", err=True)
    target = load_target(spec)
    access_log = None if quiet else (lambda line: click.echo(line, err=True))
    try:
        server = serve_target(target, host=host, port=port, model_name=model_name, api_key=api_key,
                              access_log=access_log)
    except BaseException:
        target.close()
        raise
    click.echo(f"serving {target.name} as model '{server.model_name}' at {server.base_url} (Ctrl-C to stop)")
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        target.close()
    if not quiet:
        click.echo("stopped", err=True)

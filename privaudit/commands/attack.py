"""`privaudit attack NAME ...`: run one attack family against one target."""

from __future__ import annotations

import importlib

import click

ATTACK_COMMAND_MODULES = ("attack_pii", "attack_attributes", "attack_bias", "attack_membership", "attack_context",
                          "attack_cross_user", "attack_reconstruct")


@click.group(name="attack")
def command() -> None:
    """Run one attack against one target and write a run folder."""


for _name in ATTACK_COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"privaudit.commands.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"privaudit.commands.{_name}":
            raise
        continue
    command.add_command(_module.command)

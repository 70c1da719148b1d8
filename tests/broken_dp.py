"""A deliberately broken DP-SGD recipe, for tests of the DP audit only (never registered by privaudit).

It claims what a correct `dp_sgd` run at `target_epsilon` would report, but trains with noise
multiplier 0 and clipping at `max_grad_norm` (default 1e6, i.e. off): the bug class "noise never
added" that the one-run audit (Steinke et al. 2023) must catch. Importing this module registers it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from privaudit.defenses.dp_sgd import DPSGDDefense, privacy_units, train_dp_sgd
from privaudit.defenses.registry import DefendedModel, DefenseContext, register_defense


@dataclass(frozen=True)
class BrokenDPConfig:
    """The claim (epsilon, delta) and the training that ignores it."""

    claimed_epsilon: float = 8.0
    delta: float = 1e-5
    epochs: int = 4
    batch_size: int = 16
    learning_rate: float = 3e-3
    max_grad_norm: float = 1e6
    max_length: int = 128
    seed: int = 0


@register_defense
class BrokenDPSGD(DPSGDDefense):
    """Accounts `claimed_epsilon`, adds no noise: an (intentionally) false DP claim."""

    name = "broken_dp_sgd"
    Params = BrokenDPConfig

    def apply(self, ctx: DefenseContext) -> DefendedModel:
        from privaudit.defenses.dp_sgd import DPConfig

        p = self.params
        # accountant "rdp": the honest epsilon of noise 0 is infinite, which only RDP returns (PRV and
        # GDP raise on it); the record then carries the false claim instead.
        cfg = DPConfig(noise_multiplier=0.0, delta=p.delta, max_grad_norm=p.max_grad_norm, epochs=p.epochs,
                       batch_size=p.batch_size, learning_rate=p.learning_rate, max_length=p.max_length, seed=p.seed,
                       accountant="rdp")
        record = train_dp_sgd(ctx.base_path, privacy_units(ctx.corpus, "document"), ctx.corpus.heldout_texts(), cfg,
                              ctx.out_dir, ctx.progress, name=self.name)
        claimed = dataclasses.replace(record.privacy, epsilon=p.claimed_epsilon, target_epsilon=p.claimed_epsilon)
        record = dataclasses.replace(record, privacy=claimed)
        record.save()
        return record

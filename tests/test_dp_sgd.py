"""DP-SGD with Opacus: the accountant's epsilon is reported and within target; bad layers fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from privaudit.defenses.dp_sgd import DPConfig, check_dp_layers, default_delta, epsilon_from_history, train_dp_sgd
from privaudit.errors import InputError

TRAIN = [f"Note {i}: the meeting with client number {i} moved to room {i % 5}. Regards, the office." for i in range(24)]
HELDOUT = ["Note 99: the meeting with client number 99 moved to room 4. Regards, the office."]


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_reported_epsilon_is_the_accountants_and_within_target(tiny_model_dir: Path, tmp_path: Path, mode: str) -> None:
    cfg = DPConfig(target_epsilon=3.0, epochs=2, batch_size=8, max_length=32, grad_sample_mode=mode, seed=0)
    record = train_dp_sgd(tiny_model_dir, TRAIN, HELDOUT, cfg, tmp_path / mode)
    p = record.privacy
    assert p is not None and p.grad_sample_mode == mode
    assert 0 < p.epsilon <= 3.0 + 1e-6
    assert p.steps == record.training.steps == 2 * 3  # 24 docs, expected batch 8 -> 3 steps an epoch
    assert p.sample_rate == pytest.approx(8 / 24)
    assert p.delta == default_delta(24)
    assert p.epsilon == pytest.approx(epsilon_from_history(p.accountant, p.noise_multiplier, p.sample_rate,
                                                           p.steps, p.delta), rel=1e-6)


def test_noise_multiplier_mode_spends_more_with_less_noise(tiny_model_dir: Path, tmp_path: Path) -> None:
    eps = []
    for sigma in (2.0, 0.7):
        cfg = DPConfig(noise_multiplier=sigma, epochs=1, batch_size=8, max_length=32, accountant="rdp")
        eps.append(train_dp_sgd(tiny_model_dir, TRAIN, HELDOUT, cfg, tmp_path / str(sigma)).privacy.epsilon)
    assert eps[0] < eps[1]


def test_unsupported_layer_fails_with_one_line_naming_it() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    with pytest.raises(InputError, match=r"layer '1' \(BatchNorm1d\) is not supported by Opacus.*fix_layers"):
        check_dp_layers(model)
    fixed, notes = check_dp_layers(model, fix_layers=True)
    assert any("BatchNorm1d -> GroupNorm" in n for n in notes)


def test_config_needs_exactly_one_of_epsilon_and_noise() -> None:
    with pytest.raises(InputError, match="exactly one"):
        DPConfig()
    with pytest.raises(InputError, match="exactly one"):
        DPConfig(target_epsilon=1.0, noise_multiplier=1.0)

"""The Flower ServerApp: FedAvg over the shared weights, then the global model saved to disk.

The initial global weights are the base model's shared part (with `shared_part = "lora"`, a seeded
LoRA adapter over the frozen base); each round `clients_per_round` clients
(all by default) train and FedAvg averages their shared weights, weighted by example count. With
`clip_norm` set, FedAvg is wrapped in `DifferentialPrivacyClientSideFixedClipping` (clients clip,
the server adds noise) and averages *unweighted* (every client reports `dp-weight` = 1): weighting
by example count would let a client with many documents move the average by more than clip / m,
which the noise is not calibrated for (McMahan et al., ICLR 2018, use a fixed per-user weight cap).
The global model (shared body + the base's values for any personal layers) and a small result
file (rounds completed, per-round train metrics) are written into the run's work folder.
"""

from __future__ import annotations

import json
import os

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg

os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    from privaudit.defenses.federated.parameters import load_shared, shared_state
    from privaudit.defenses.federated.settings import (
        DP_WEIGHT_KEY, GLOBAL_ADAPTER_DIR, GLOBAL_DIR, SERVER_RESULT, RunSettings,
    )
    from privaudit.defenses.finetune import FinetuneConfig, apply_lora, load_causal_lm, seed_everything

    settings = RunSettings.from_run_config(context.run_config)
    cfg = settings.config
    model, tokenizer = load_causal_lm(settings.base_dir)
    if cfg.shared_lora:  # FedIT: the one initial adapter every client starts from, seeded
        seed_everything(cfg.seed)
        model = apply_lora(model, FinetuneConfig(lora=True, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                       lora_targets=cfg.lora_targets))
    initial = ArrayRecord(shared_state(model, cfg))
    n, m = cfg.num_clients, cfg.sampled_clients
    strategy = FedAvg(fraction_train=m / n, fraction_evaluate=1.0, min_train_nodes=m, min_evaluate_nodes=n,
                      min_available_nodes=n, weighted_by_key=DP_WEIGHT_KEY if cfg.dp else "num-examples")
    if cfg.dp:
        strategy = DifferentialPrivacyClientSideFixedClipping(
            strategy, noise_multiplier=cfg.noise_multiplier, clipping_norm=float(cfg.clip_norm), num_sampled_clients=m)
    result = strategy.start(grid=grid, initial_arrays=initial, num_rounds=cfg.rounds,
                            timeout=cfg.round_timeout_s, train_config=ConfigRecord({"lr": cfg.learning_rate}))
    load_shared(model, result.arrays.to_torch_state_dict())
    out = settings.work_dir / GLOBAL_DIR
    if cfg.shared_lora:  # the averaged adapter as a PEFT folder, and merged into the base: the global model
        model.save_pretrained(settings.work_dir / GLOBAL_ADAPTER_DIR)
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    rounds = {str(r): {k: float(v) for k, v in m.items()} for r, m in sorted(result.train_metrics_clientapp.items())}
    evaluated = {str(r): {k: float(v) for k, v in m.items()}
                 for r, m in sorted(result.evaluate_metrics_clientapp.items())}
    tmp = settings.work_dir / (SERVER_RESULT + ".tmp")
    tmp.write_text(json.dumps({"rounds_completed": len(rounds), "train_metrics": rounds, "evaluate_metrics": evaluated,
                               "shared_parameters": int(sum(v.numel() for v in initial.to_torch_state_dict().values()))}),
                   encoding="utf-8")
    tmp.replace(settings.work_dir / SERVER_RESULT)

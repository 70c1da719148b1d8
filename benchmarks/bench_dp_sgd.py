"""DP-SGD cost: step time and peak memory vs non-private training, same tiny Llama and batch.

Prints one line per mode (non-private, Opacus hooks, functorch, ghost clipping) and the ratios to
non-private. No assertions: a measurement. Run: `python benchmarks/bench_dp_sgd.py [--steps N]`.
Peak memory is CUDA's max_memory_allocated on a GPU, else the process' peak RSS growth (ru_maxrss,
coarse: it only rises, so modes run from cheapest to dearest and each reports its own increase).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def peak_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(mode: str, model_dir: Path, args: argparse.Namespace, device: str) -> tuple[float, float]:
    import torch
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    from privaudit.defenses.dp_sgd import dp_step_loss
    from privaudit.defenses.finetune import load_causal_lm, per_sequence_loss

    torch.manual_seed(0)
    model, _ = load_causal_lm(model_dir)
    model.to(device).train()
    n = args.batch * 8
    ids = torch.randint(5, model.config.vocab_size, (n, args.length), device=device)
    data = TensorDataset(ids, torch.ones_like(ids))
    loader = DataLoader(data, batch_size=args.batch, shuffle=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = None
    if mode != "non-private":
        engine = PrivacyEngine(accountant="rdp")
        kw = dict(module=model, optimizer=opt, data_loader=loader, noise_multiplier=1.0, max_grad_norm=1.0,
                  poisson_sampling=False, grad_sample_mode=mode)
        if mode == "ghost":
            kw["criterion"] = torch.nn.CrossEntropyLoss(ignore_index=-100)
            model, opt, criterion, loader = engine.make_private(**kw)
        else:
            model, opt, loader = engine.make_private(**kw)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = peak_mb(device)
    times = []
    it = iter(loader)
    for step in range(args.steps + 2):
        try:
            x, m = next(it)
        except StopIteration:
            it = iter(loader)
            x, m = next(it)
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = per_sequence_loss(model, x, m).mean() if mode == "non-private" else dp_step_loss(model, x, m, criterion)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if step >= 2:  # warm-up steps excluded
            times.append(time.perf_counter() - t)
    mem = peak_mb(device) if device == "cuda" else peak_mb(device) - before
    return sum(times) / len(times), mem


def main() -> None:
    import torch

    from privaudit.models.tiny import build_tiny_model

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    texts = [f"Sample sentence number {i} about the weather and the office." for i in range(50)]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(texts, Path(tmp) / "m", seed=0, hidden_size=args.hidden, num_layers=args.layers)
        print(f"device={device} batch={args.batch}x{args.length} tokens hidden={args.hidden} layers={args.layers}")
        base = None
        for mode in ("non-private", "hooks", "functorch", "ghost"):
            sec, mem = bench(mode, model_dir, args, device)
            base = base or (sec, mem)
            print(f"{mode:12s} step {sec * 1000:8.1f} ms  x{sec / base[0]:.2f}   peak mem {mem:8.1f} MB  "
                  f"x{(mem / base[1]) if base[1] > 0 else float('nan'):.2f}")


if __name__ == "__main__":
    main()

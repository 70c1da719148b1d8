"""Federated personalization end to end: partition, run Flower for real, assemble and evaluate the targets.

Output folder layout:
  global/                 the FedAvg global model (`hf:out/global`; with shared_part = "lora" the base
                          with the averaged adapter merged in, the adapter itself in global_adapter/)
  clients/client_K/       client K's personal part: `adapter/` (LoRA) or `model/` (head: a full folder)
  logs/                   superlink.log, supernode_K.log, flwr_run.log
  federated.json          per-client perplexities, rounds completed, train metrics
  defended.json           the DefendedModel record (written last)
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from privaudit.defenses.federated.config import FederatedConfig
from privaudit.defenses.federated.deployment import FlowerDeployment, FlowerProcessError
from privaudit.defenses.federated.parameters import ADAPTER_DIR, HEAD_FILE
from privaudit.defenses.federated.partition import ClientPartition, partition_corpus, write_partitions
from privaudit.defenses.federated.settings import (
    GLOBAL_ADAPTER_DIR, GLOBAL_DIR, PARTITIONS_DIR, SERVER_RESULT, SETTINGS_KEY, RunSettings,
)
from privaudit.defenses.registry import (
    DefendedModel, Defense, DefenseContext, PrivacyReport, TrainingReport, register_defense,
)
from privaudit.errors import InputError
from privaudit.progress import ProgressReporter

APP_DIR = "flower_app"
SUMMARY_FILE = "federated.json"


@dataclass(frozen=True)
class ClientOutcome:
    """One client's personalized target and its utility on its own local held-out documents."""

    client_id: int
    target_spec: str
    subjects: int
    train_texts: int
    heldout_texts: int
    personalized_perplexity: float
    global_perplexity: float
    base_perplexity: float


@dataclass(frozen=True)
class FederatedOutcome:
    rounds_completed: int
    global_spec: str
    clients: tuple[ClientOutcome, ...]
    train_metrics: Mapping[str, Mapping[str, float]]
    evaluate_metrics: Mapping[str, Mapping[str, float]]
    seconds: float
    log_dir: Path
    shared_parameters: int = 0  # the tensors' size FedAvg averaged (what trained, besides personal parts)


def write_flower_app(folder: Path, settings_file: Path, dp: bool) -> Path:
    """The Flower App folder `flwr run` builds into a FAB: only a pyproject naming our two apps."""
    folder.mkdir(parents=True, exist_ok=True)
    client = "dp_app" if dp else "app"
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "privaudit-federated"\nversion = "1.0.0"\n'
        'description = "privaudit FedPer personalization"\nlicense = "Apache-2.0"\ndependencies = []\n\n'
        '[tool.flwr.app]\npublisher = "privaudit"\n\n'
        '[tool.flwr.app.components]\n'
        'serverapp = "privaudit.defenses.federated.server_app:app"\n'
        f'clientapp = "privaudit.defenses.federated.client_app:{client}"\n\n'
        f'[tool.flwr.app.config]\n{SETTINGS_KEY} = {json.dumps(str(settings_file))}\n', encoding="utf-8")
    return folder


def dp_epsilon(noise_multiplier: float, sample_rate: float, rounds: int, delta: float) -> float:
    """Client-level (user-level) epsilon of DP-FedAvg: `rounds` releases of the subsampled Gaussian
    mechanism at client-sampling rate q = `sample_rate` (clients per round / clients), composed
    with Opacus' RDP accountant (Mironov, CSF 2017; Mironov, Talwar, Zhang 2019 for the sampled
    Gaussian), as McMahan et al. (ICLR 2018) account DP-FedAvg.

    The guarantee: for any one client (here a user's, or a group of users', whole partition) the
    sequence of global models is (epsilon, delta)-indistinguishable from a run without that
    client (add/remove one client). At q = 1 there is no amplification (every client every
    round); at q < 1 the amplification assumes Poisson sampling of clients, while Flower samples a
    fixed-size subset uniformly; the number is the DP-FedAvg convention, not a proof for that sampler.
    """
    if noise_multiplier <= 0:
        return math.inf
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, rounds)]
    return float(accountant.get_epsilon(delta=delta))


central_dp_epsilon = dp_epsilon  # the name before client sampling was accounted


def connect(cfg: FederatedConfig, out_dir: Path, node_configs: list[dict[str, int | str]]):
    """Where the run goes: an existing federation (`superlink`) or SuperLink + SuperNodes started here."""
    if cfg.superlink is not None:
        from privaudit.defenses.federated.remote import RemoteFederation

        certs = Path(cfg.root_certificates).expanduser() if cfg.root_certificates else None
        return RemoteFederation(cfg.superlink, out_dir / "logs", certs, cfg.insecure)
    return FlowerDeployment(out_dir / "logs", node_configs, startup_timeout_s=cfg.startup_timeout_s)


def federate(base: Path, corpus: Any, cfg: FederatedConfig, out_dir: Path,
             progress: ProgressReporter | None = None, *, name: str = "federated") -> DefendedModel:
    """Run FedPer personalization of `base` over the corpus' subjects split into clients; save the targets."""
    progress = progress or ProgressReporter(quiet=True)
    base, out_dir = Path(base).resolve(), Path(out_dir).resolve()
    if not (base / "config.json").is_file():
        raise InputError(f"{base}: not a model folder (no config.json)")
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in (GLOBAL_DIR, GLOBAL_ADAPTER_DIR, "clients", SERVER_RESULT):  # a rerun starts clean (personal parts included)
        path = out_dir / stale
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    partitions = partition_corpus(corpus, cfg.num_clients, cfg.heldout_docs_per_subject)
    write_partitions(partitions, out_dir / PARTITIONS_DIR)
    federation = connect(cfg, out_dir, [{"partition-id": p.client_id} for p in partitions])
    settings = RunSettings(base, out_dir, cfg)
    app_dir = write_flower_app(out_dir / APP_DIR, settings.write(), cfg.dp)
    started = time.perf_counter()
    where = (f"the federation at {cfg.superlink}" if cfg.superlink else
             f"SuperLink + {cfg.num_clients} SuperNodes on 127.0.0.1")
    progress.log(f"federated: {where}, {cfg.rounds} rounds, {cfg.sampled_clients} of {cfg.num_clients} clients each")
    with federation:
        federation.run_app(app_dir, cfg.rounds * cfg.round_timeout_s, out_dir / SERVER_RESULT)
    seconds = time.perf_counter() - started
    server = json.loads((out_dir / SERVER_RESULT).read_text(encoding="utf-8"))
    if server["rounds_completed"] < cfg.rounds:
        raise FlowerProcessError(f"federated run completed {server['rounds_completed']} of {cfg.rounds} rounds "
                                 f"(logs: {out_dir / 'logs'})")
    outcome = _assemble(base, out_dir, partitions, cfg, server, seconds)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(_summary_json(outcome), indent=2), encoding="utf-8")
    return _record(name, base, corpus, cfg, outcome, out_dir)


def _assemble(base: Path, out_dir: Path, partitions: list[ClientPartition], cfg: FederatedConfig,
              server: Mapping[str, Any], seconds: float) -> FederatedOutcome:
    """Build each client's personalized target (global body + its personal part) and measure it."""
    from privaudit.defenses.finetune import load_causal_lm, perplexity

    global_dir = out_dir / GLOBAL_DIR
    base_model, tokenizer = load_causal_lm(base)
    global_model, _ = load_causal_lm(global_dir)
    clients = []
    for p in partitions:
        client_dir = out_dir / "clients" / f"client_{p.client_id}"
        model, _ = load_causal_lm(global_dir)
        if cfg.personal_part == "none":  # every client is served the global model
            spec = f"hf:{global_dir}"
        elif cfg.personal_part == "lora":
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, client_dir / ADAPTER_DIR, is_trainable=False)
            spec = f"hf:{global_dir}:adapter={client_dir / ADAPTER_DIR}"
        else:
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(client_dir / HEAD_FILE)), strict=False)
            model.save_pretrained(client_dir / "model")
            tokenizer.save_pretrained(client_dir / "model")
            spec = f"hf:{client_dir / 'model'}"
        held = list(p.heldout_texts)
        clients.append(ClientOutcome(
            client_id=p.client_id, target_spec=spec, subjects=len(p.subject_ids), train_texts=len(p.train_texts),
            heldout_texts=len(held),
            personalized_perplexity=perplexity(model, tokenizer, held, cfg.batch_size, cfg.max_length),
            global_perplexity=perplexity(global_model, tokenizer, held, cfg.batch_size, cfg.max_length),
            base_perplexity=perplexity(base_model, tokenizer, held, cfg.batch_size, cfg.max_length)))
    return FederatedOutcome(int(server["rounds_completed"]), f"hf:{global_dir}", tuple(clients),
                            server.get("train_metrics", {}),
                            server.get("evaluate_metrics", {}), seconds, out_dir / "logs",
                            int(server.get("shared_parameters", 0)))


def _summary_json(outcome: FederatedOutcome) -> dict[str, Any]:
    d = asdict(outcome)
    d["log_dir"] = str(outcome.log_dir)
    return d


def _record(name: str, base: Path, corpus: Any, cfg: FederatedConfig, outcome: FederatedOutcome,
            out_dir: Path) -> DefendedModel:
    from privaudit.defenses.finetune import load_causal_lm, perplexity

    heldout = corpus.heldout_texts()
    model, tokenizer = load_causal_lm(out_dir / GLOBAL_DIR)
    base_model, _ = load_causal_lm(base)
    last = outcome.train_metrics.get(str(outcome.rounds_completed), {})
    steps = sum(cfg.local_epochs * math.ceil(c.train_texts / cfg.batch_size) for c in outcome.clients) * cfg.rounds
    training = TrainingReport(
        steps=steps, seconds=round(outcome.seconds, 3), train_loss=float(last.get("train-loss", float("nan"))),
        heldout_perplexity=perplexity(model, tokenizer, heldout, cfg.batch_size, cfg.max_length),
        base_heldout_perplexity=perplexity(base_model, tokenizer, heldout, cfg.batch_size, cfg.max_length),
        # shared LoRA: only the adapter trained; otherwise every weight did (shared body + personal part)
        trainable_parameters=int(outcome.shared_parameters if cfg.shared_lora else sum(p.numel() for p in model.parameters())),
        mode=cfg.mode)
    privacy = None
    if cfg.dp and cfg.noise_multiplier > 0:
        privacy = PrivacyReport(
            epsilon=dp_epsilon(cfg.noise_multiplier, cfg.sample_rate, outcome.rounds_completed, cfg.delta),
            delta=cfg.delta, noise_multiplier=cfg.noise_multiplier, max_grad_norm=float(cfg.clip_norm or 0.0),
            sample_rate=cfg.sample_rate, steps=outcome.rounds_completed, accountant="rdp",
            grad_sample_mode="flower-client-side-fixed-clipping", poisson_sampling=False, privacy_unit="client")
    notes = [f"rounds_completed={outcome.rounds_completed}", f"global={outcome.global_spec}"]
    notes += [f"client_{c.client_id}: spec={c.target_spec} heldout_ppl personalized={c.personalized_perplexity:.3f} "
              f"global={c.global_perplexity:.3f} base={c.base_perplexity:.3f}" for c in outcome.clients]
    if cfg.dp:
        notes.append("client-level DP (DP-FedAvg): Flower client-side fixed clipping, unweighted average, server "
                     f"noise; {cfg.sampled_clients} of {cfg.num_clients} clients per round; covers the global "
                     "model only: personal parts and evaluation metrics are not covered by it")
    if cfg.superlink:
        notes.append(f"federation: existing SuperLink {cfg.superlink} "
                     f"({'insecure' if cfg.insecure else 'TLS'})")
    record = DefendedModel(name=name, target_spec=outcome.global_spec, out_dir=out_dir, training=training,
                           privacy=privacy, notes=tuple(notes))
    record.save()
    return record


def load_outcome(out_dir: Path) -> dict[str, Any]:
    """The per-client summary (`federated.json`) of a finished federated run."""
    return json.loads((Path(out_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))


@register_defense
class FederatedDefense(Defense):
    """FedPer personalization with Flower (real SuperLink + SuperNodes): global model + per-client targets."""

    name = "federated"
    Params = FederatedConfig

    def apply(self, ctx: DefenseContext) -> DefendedModel:
        return federate(ctx.base_path, ctx.corpus, self.params, ctx.out_dir, ctx.progress, name=self.name)


@dataclass(frozen=True)
class FederatedDPConfig(FederatedConfig):
    """`federated` with DP-FedAvg on by default: every update clipped to L2 norm 1e-3, noise
    multiplier 1.0. The clip is tiny on purpose: the noise per coordinate of the average is
    noise_multiplier x clip / m, so with m = 2 clients a clip of 1 would add N(0, 0.5^2) to every
    weight. With few clients, client-level DP leaves the global model near the base: that is the
    honest price (McMahan et al. need thousands of users per round for utility)."""

    clip_norm: float | None = 1e-3
    noise_multiplier: float = 1.0


@register_defense
class FederatedDPDefense(FederatedDefense):
    """`federated` with client-level DP (Flower's client-side fixed clipping + server noise) by default."""

    name = "federated_dp"
    Params = FederatedDPConfig

"""The Flower ClientApp: one client = one user's (or one group's) documents; trains locally, FedPer-style.

On each TRAIN message: load the base architecture, put in the global shared weights the server
sent, attach this client's personal part from disk, train `local_epochs` with the project's
fine-tuning loss (`per_sequence_loss`), save the personal part back, and reply with the shared
weights only. On each EVALUATE message (sent after aggregation, carrying the new global weights)
the client adapts its personal part to the new global body (body frozen, one pass over its local
training data) and reports perplexity on its local held-out documents with and without the
personal part: the personal part is always fitted to the body it will be served with. `dp_app` is the same app behind Flower's `fixedclipping_mod`, which clips the update
(reply minus received weights) to the norm that `DifferentialPrivacyClientSideFixedClipping` sends.
"""

from __future__ import annotations

import os

from flwr.app import ArrayRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PARTITION_KEY = "partition-id"


def local_train(msg: Message, context: Context) -> Message:
    """One round of local training; returns the reply carrying the updated shared weights."""
    from privaudit.defenses.federated.parameters import detach_personal
    from privaudit.defenses.federated.settings import DP_WEIGHT_KEY

    settings, client_id, server_round, received, partition = _unpack(msg, context)
    cfg = settings.config
    model, tokenizer = _global_with_personal(settings, client_id, received)
    losses, examples = _fit(model, tokenizer, partition.train_texts, cfg, cfg.seed + 1009 * client_id + server_round,
                            cfg.local_epochs)
    plain = detach_personal(model, cfg.personal_part, settings.client_dir(client_id))
    state = plain.state_dict()
    shared = {k: state[k].detach().cpu().contiguous() for k in received.keys()}  # same keys, same order
    metrics = MetricRecord({"train-loss": sum(losses) / max(len(losses), 1), "num-examples": examples,
                            DP_WEIGHT_KEY: 1, "client-id": client_id})
    return Message(content=RecordDict({"arrays": ArrayRecord(shared), "metrics": metrics}), reply_to=msg)


def personal_adapt(msg: Message, context: Context) -> Message:
    """Fit the personal part to the new global body (body frozen); report local held-out perplexity."""
    from privaudit.defenses.federated.parameters import detach_personal, personal_parameter_filter
    from privaudit.defenses.federated.settings import DP_WEIGHT_KEY
    from privaudit.defenses.finetune import perplexity

    settings, client_id, server_round, received, partition = _unpack(msg, context)
    cfg = settings.config
    model, tokenizer = _global_with_personal(settings, client_id, received)
    held = list(partition.heldout_texts)
    losses: list[float] = []
    if cfg.personal_part != "none":  # nothing personal to fit: the global model is what this client is served
        is_personal = personal_parameter_filter(model, cfg.personal_part)
        for name, p in model.named_parameters():
            p.requires_grad_(is_personal(name))
        losses, _ = _fit(model, tokenizer, partition.train_texts, cfg,
                         cfg.seed + 1009 * client_id + 500 + server_round, 1)
    personalized = perplexity(model, tokenizer, held, cfg.batch_size, cfg.max_length)
    plain = detach_personal(model, cfg.personal_part, settings.client_dir(client_id))
    metrics = {"personalized-perplexity": personalized, "num-examples": max(len(held), 1), DP_WEIGHT_KEY: 1,
               "client-id": client_id, "adapt-loss": sum(losses) / max(len(losses), 1)}
    if cfg.personal_part == "lora":  # the plain model is exactly the global one (adapter removed)
        metrics["global-perplexity"] = perplexity(plain, tokenizer, held, cfg.batch_size, cfg.max_length)
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def _unpack(msg: Message, context: Context):
    from privaudit.defenses.federated.partition import read_partition
    from privaudit.defenses.federated.settings import PARTITIONS_DIR, RunSettings

    settings = RunSettings.from_run_config(context.run_config)
    client_id = int(context.node_config[PARTITION_KEY])
    config_record = next(iter(msg.content.config_records.values()))
    server_round = int(config_record.get("server-round", 1))
    received = next(iter(msg.content.array_records.values()))
    partition = read_partition(settings.work_dir / PARTITIONS_DIR, client_id)
    return settings, client_id, server_round, received, partition


def _global_with_personal(settings, client_id: int, received: ArrayRecord):
    """The base architecture holding the received global shared weights plus this client's personal part."""
    from privaudit.defenses.federated.parameters import attach_personal, load_shared
    from privaudit.defenses.finetune import FinetuneConfig, apply_lora, load_causal_lm, seed_everything

    cfg = settings.config
    seed_everything(cfg.seed + 1009 * client_id)  # same initial adapter every run for a client
    model, tokenizer = load_causal_lm(settings.base_dir)
    lora_cfg = FinetuneConfig(lora=True, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_targets=cfg.lora_targets)
    if cfg.shared_lora:  # FedIT: the frozen base with the global adapter the server sent
        model = apply_lora(model, lora_cfg)  # only the adapter trains; its init is replaced by the global one
    load_shared(model, received.to_torch_state_dict())
    return attach_personal(model, cfg.personal_part, settings.client_dir(client_id), lora_cfg), tokenizer


def _fit(model, tokenizer, texts, cfg, seed: int, epochs: int) -> tuple[list[float], int]:
    """`epochs` passes of the project's fine-tuning loss over `texts`, on the parameters that require grad."""
    import torch
    from torch.utils.data import DataLoader

    from privaudit.defenses.finetune import encode_texts, per_sequence_loss, seed_everything

    seed_everything(seed)
    data = encode_texts(tokenizer, list(texts), cfg.max_length)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    model.train()
    losses: list[float] = []
    for _ in range(epochs):
        for ids, att in loader:
            loss = per_sequence_loss(model, ids, att).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    return losses, len(data)


def clip_train_updates(msg: Message, context: Context, call_next):
    """Flower's `fixedclipping_mod`, applied to TRAIN messages only (evaluation replies carry no weights)."""
    if msg.metadata.message_type == MessageType.TRAIN:
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


app = ClientApp()
app.train()(local_train)
app.evaluate()(personal_adapt)

dp_app = ClientApp(mods=[clip_train_updates])
dp_app.train()(local_train)
dp_app.evaluate()(personal_adapt)

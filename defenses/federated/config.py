"""The federated-personalization config: how many clients, rounds, what stays personal, optional DP."""

from __future__ import annotations

from dataclasses import dataclass

from privaudit.errors import InputError

PERSONAL_PARTS: tuple[str, ...] = ("lora", "head", "none")
SHARED_PARTS: tuple[str, ...] = ("model", "lora")


@dataclass(frozen=True)
class FederatedConfig:
    """FedPer-style federated fine-tuning (Arivazhagan et al., "Federated Learning with Personalization
    Layers", 2019): the shared body is averaged with FedAvg (McMahan et al., AISTATS 2017) while
    `personal_part` never leaves its client.

    `personal_part`: "lora" = a per-client LoRA adapter (the whole base model is the shared body);
    "head" = the last decoder block, final norm and LM head; "none" = nothing personal.
    `shared_part`: "model" = every weight outside the personal part is trained and averaged;
    "lora" = the base stays frozen and one LoRA adapter is what the clients train and FedAvg
    averages (federated LoRA instruction tuning, FedIT: Zhang et al., ICASSP 2024), which needs
    `personal_part = "none"`. Why both: FedPer's shared body suits a small model trained from
    scratch; on a pretrained checkpoint, training and averaging all of its weights at a LoRA
    learning rate wrecks it (SmolLM2-135M: held-out perplexity 57 -> 524 in one round at 3e-3,
    benchmarks/RESULTS.md "Real LoRA"), and a frozen base with a shared adapter is how
    pretrained models are personalized federatedly.
    `clip_norm` turns on Flower's central DP with client-side fixed clipping (DP-FedAvg, McMahan et
    al., "Learning Differentially Private Recurrent Language Models", ICLR 2018): each client's
    update is clipped to this L2 norm before upload (`fixedclipping_mod`), the server averages the
    sampled clients' updates *unweighted* (equal weights bound each client's influence by
    clip / m) and adds Gaussian noise of `noise_multiplier` x `clip_norm` / m
    (`DifferentialPrivacyClientSideFixedClipping`), m = `clients_per_round`. Flower takes a noise
    multiplier, not an epsilon, so epsilon is computed by an accountant afterwards (`dp_epsilon`).
    `clients_per_round` (default: all) is how many clients each round samples; the rate
    q = clients_per_round / num_clients enters the accountant.

    `superlink` ("HOST:PORT") submits the run to an existing Flower federation instead of starting
    local processes; `root_certificates` is the PEM CA bundle that verifies its TLS certificate
    (Flower's `root-certificates`), `insecure` connects without TLS (local test setups only).
    """

    num_clients: int = 2
    rounds: int = 2
    local_epochs: int = 1
    learning_rate: float = 3e-3
    batch_size: int = 16
    max_length: int = 128
    personal_part: str = "lora"
    shared_part: str = "model"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    clip_norm: float | None = None
    noise_multiplier: float = 0.0
    delta: float = 1e-5
    clients_per_round: int | None = None
    seed: int = 0
    heldout_docs_per_subject: int = 1
    round_timeout_s: float = 600.0
    startup_timeout_s: float = 60.0
    superlink: str | None = None
    root_certificates: str | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        for name in ("num_clients", "rounds", "local_epochs", "batch_size", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                raise InputError(f"federated: {name} must be >= 1, got {getattr(self, name)}")
        if self.num_clients < 2:
            raise InputError(f"federated: num_clients must be >= 2 (FedAvg needs two clients), got {self.num_clients}")
        if self.learning_rate <= 0:
            raise InputError(f"federated: learning_rate must be > 0, got {self.learning_rate}")
        if self.personal_part not in PERSONAL_PARTS:
            raise InputError(f"federated: personal_part must be one of {', '.join(PERSONAL_PARTS)}, "
                             f"got '{self.personal_part}'")
        if self.shared_part not in SHARED_PARTS:
            raise InputError(f"federated: shared_part must be one of {', '.join(SHARED_PARTS)}, got '{self.shared_part}'")
        if self.shared_part == "lora" and self.personal_part != "none":
            raise InputError("federated: shared_part = 'lora' trains and averages the LoRA adapter itself over a frozen "
                             f"base, so nothing else can be personal: set personal_part = 'none' (got '{self.personal_part}')")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise InputError(f"federated: clip_norm must be > 0, got {self.clip_norm}")
        if self.noise_multiplier < 0:
            raise InputError(f"federated: noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if self.noise_multiplier > 0 and self.clip_norm is None:
            raise InputError("federated: noise_multiplier needs clip_norm (noise is scaled to the clipping norm)")
        if not 0 < self.delta < 1:
            raise InputError(f"federated: delta must be in (0, 1), got {self.delta}")
        if self.clients_per_round is not None and not 1 <= self.clients_per_round <= self.num_clients:
            raise InputError(f"federated: clients_per_round must be in [1, num_clients={self.num_clients}], "
                             f"got {self.clients_per_round}")
        if self.superlink is not None:
            host, sep, port = self.superlink.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InputError(f"federated: superlink must be HOST:PORT, got '{self.superlink}'")
        if self.root_certificates is not None and self.insecure:
            raise InputError("federated: root_certificates and insecure exclude each other")
        if self.heldout_docs_per_subject < 0:
            raise InputError(f"federated: heldout_docs_per_subject must be >= 0, got {self.heldout_docs_per_subject}")

    @property
    def shared_lora(self) -> bool:
        """The base is frozen and the shared (averaged) part is a LoRA adapter (FedIT)."""
        return self.shared_part == "lora"

    @property
    def mode(self) -> str:
        """The training mode recorded in the defended model (`federated-lora` = FedPer with personal LoRA)."""
        return f"federated-{self.personal_part}" if self.personal_part != "none" else f"federated-avg-{self.shared_part}"

    @property
    def dp(self) -> bool:
        return self.clip_norm is not None

    @property
    def sampled_clients(self) -> int:
        """m: the clients each round trains (all of them unless `clients_per_round` says otherwise)."""
        return self.clients_per_round or self.num_clients

    @property
    def sample_rate(self) -> float:
        """q = m / N, the client-sampling rate the accountant composes over the rounds."""
        return self.sampled_clients / self.num_clients

"""The run settings both Flower apps read: one JSON file named in the app's run config.

Flower's run config holds flat scalars; the apps need a base-model path, a work folder and the whole
`FederatedConfig`, so the runner writes them once to `settings.json` and passes only its path
(`settings-file`). Both apps run in processes the SuperLink/SuperNodes spawn, never in the runner's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from privaudit.defenses.federated.config import FederatedConfig

SETTINGS_KEY = "settings-file"
SERVER_RESULT = "server_result.json"
GLOBAL_DIR = "global"
GLOBAL_ADAPTER_DIR = "global_adapter"  # shared_part = "lora": the averaged adapter (merged into global/)
PARTITIONS_DIR = "partitions"
CLIENTS_DIR = "clients"
DP_WEIGHT_KEY = "dp-weight"  # the constant (1) FedAvg weight every client reports: unweighted averaging under DP


@dataclass(frozen=True)
class RunSettings:
    base_dir: Path
    work_dir: Path
    config: FederatedConfig

    def write(self) -> Path:
        path = self.work_dir / "settings.json"
        cfg = asdict(self.config)
        path.write_text(json.dumps({"base_dir": str(self.base_dir), "work_dir": str(self.work_dir), "config": cfg}),
                        encoding="utf-8")
        return path

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> "RunSettings":
        d = json.loads(Path(str(run_config[SETTINGS_KEY])).read_text(encoding="utf-8"))
        cfg = dict(d["config"])
        cfg["lora_targets"] = tuple(cfg["lora_targets"])
        return cls(Path(d["base_dir"]), Path(d["work_dir"]), FederatedConfig(**cfg))

    def client_dir(self, client_id: int) -> Path:
        return self.work_dir / CLIENTS_DIR / f"client_{client_id}"

"""`PrivacyAuditCallback`: a `transformers.TrainerCallback` that audits the model every N steps.

Its own module because it imports transformers at import time (to subclass TrainerCallback);
`privaudit.PrivacyAuditCallback` loads it on first use, so `import privaudit` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from transformers import TrainerCallback

from privaudit.training import TrainingAudit


class PrivacyAuditCallback(TrainerCallback):
    """Audit `Trainer`'s live model at step 0 and every `every` optimizer steps (privaudit.training).

    `Trainer(..., callbacks=[PrivacyAuditCallback({"pii": {"subjects": subjects}}, out="runs/train",
    every=50)])`; the tokenizer defaults to the Trainer's `processing_class`. The model is audited in
    place, its train mode, gradients and RNG restored (privaudit.live.preserved_training_state).
    """

    def __init__(self, attacks: Mapping[str, Mapping[str, Any]], *, out: str | Path, every: int = 100,
                 tokenizer: Any = None, **options: Any) -> None:
        self.audit = TrainingAudit(attacks, out=out, every=every, tokenizer=tokenizer, **options)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       processing_class: Any = None, **kwargs: Any) -> None:
        if state.global_step == 0 and model is not None:
            self.audit.run(model, 0, self.audit.tokenizer or processing_class)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None,
                    processing_class: Any = None, **kwargs: Any) -> None:
        if model is not None:
            self.audit.maybe_audit(model, state.global_step, self.audit.tokenizer or processing_class)

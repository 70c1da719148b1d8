"""White-box soft-prompt probe (ProPILE Sec. 3.3): equivalence with plain greedy, lift, capability errors."""

from __future__ import annotations

import pytest

from privaudit.attacks.base import RunContext, get_attack
from privaudit.attacks.pii_probes import build_probes, load_templates
from privaudit.attacks.soft_prompt import (
    SoftPromptConfig,
    WhiteBox,
    generate_with_soft_prompt,
    run_soft_prompt_probe,
    split_subjects,
    train_soft_prompt,
)
from privaudit.data.subjects import generate_subjects
from privaudit.engine.store import RunStore
from privaudit.errors import CapabilityError, InputError
from privaudit.targets.base import GenerationConfig, load_target


def test_split_is_seeded_disjoint_and_never_empty():
    ids = [f"s{i}" for i in range(10)]
    train, test = split_subjects(ids, 0.5, seed=0)
    assert split_subjects(ids, 0.5, seed=0) == (train, test)
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(ids) and len(train) == 5
    assert split_subjects(["a", "b"], 0.99, seed=0)[1]  # the evaluation side keeps at least one subject
    with pytest.raises(InputError):
        split_subjects(["a"], 0.5, seed=0)


def test_empty_soft_prompt_generation_equals_the_targets_greedy_generation(tiny_model_dir):
    target = load_target(f"hf:{tiny_model_dir}")
    wb = WhiteBox.of(target)
    prompts = ["Alice Johnson's email is", "Hello! How", "Frank's address is 7 Harbor"]
    empty = wb.model.get_input_embeddings().weight[:0]
    mine = generate_with_soft_prompt(wb, empty, prompts, 8, batch_size=3)
    theirs = target.generate(prompts, GenerationConfig(max_new_tokens=8))
    assert mine == [o[0] for o in theirs]


def test_training_lowers_the_loss_and_leaves_the_model_untouched(tiny_model_dir):
    import torch

    target = load_target(f"hf:{tiny_model_dir}")
    wb = WhiteBox.of(target)
    before = [p.detach().clone() for p in wb.model.parameters()]
    pairs = [("Alice Johnson's email is", " alice.johnson@example.com"), ("Bob Smith lives at", " 42 Elm Street")]
    _, loss_1 = train_soft_prompt(wb, pairs, SoftPromptConfig(num_tokens=4, steps=1, learning_rate=0.05))
    soft, loss_30 = train_soft_prompt(wb, pairs, SoftPromptConfig(num_tokens=4, steps=30, learning_rate=0.05))
    assert soft.shape == (4, wb.model.get_input_embeddings().weight.shape[1])
    assert loss_30 < loss_1
    assert all(torch.equal(a, b) for a, b in zip(before, wb.model.parameters()))
    assert all(not p.requires_grad for p in wb.model.parameters()) or wb.model.training is False


def test_targets_without_gradients_get_a_capability_error(tmp_path):
    """An openai: endpoint (a real HTTP server on 127.0.0.1) offers no weights, so no soft prompt."""
    from reliability.char_target import CharBigramTarget

    from privaudit.data.subjects import write_subjects
    from privaudit.serve import serve_target

    subjects = tmp_path / "subjects.jsonl"
    write_subjects(subjects, generate_subjects(4, seed=0))
    attack = get_attack("pii").from_config({"subjects": str(subjects), "soft_prompt": True}, "test")
    with serve_target(CharBigramTarget(), model_name="char") as server:
        remote = load_target(f"openai:{server.base_url}#char")
        try:
            assert "gradients" not in remote.capabilities
            with pytest.raises(CapabilityError, match="gradients"):
                attack.check_target(remote)
            with pytest.raises(CapabilityError, match="gradients"):
                WhiteBox.of(remote)
        finally:
            remote.close()


@pytest.mark.slow
def test_soft_prompt_probe_reports_its_lift_on_subjects_it_was_not_tuned_on(memorized_setup, tmp_path):
    """Tuned on some memorized subjects, measured on the others against the same templates, resumable.

    Known gap (measured, issue 3): on this fixture the exact-match lift is not positive, so the test
    checks that the lift is measured on held-out subjects only and reported with its interval. The
    fine-tuned tiny model reproduces a subject's PII only right after the exact document context it
    was trained on (23/24 email contexts of training subjects, but 7/105 email template probes); any
    prefix between BOS and a template breaks those document-start hits, and no soft-prompt setting
    tried (random / text / BOS init, 1-8 vectors, lr 1e-3..1e-1, 20-100 steps, before or after BOS)
    beat the templates on held-out subjects (e.g. 3 vs 4 of 133 probes, split seed 0). The soft
    prompt does lower the truth's teacher-forced NLL on held-out subjects in 9/9 (split x type) cases.
    Session 3: packing the fine-tuning data (run_clm blocks, 16 epochs) and a fine-tuned SmolLM2-135M
    (templates recover 33/105 training-subject emails) did not change it: the soft prompt fits the
    tuning subjects' own values (train loss 0.01) and loses on held-out ones (1 vs 9, 9 vs 16 of 49).
    """
    subjects = memorized_setup.train_subjects()
    train_ids, eval_ids = split_subjects([s.id for s in subjects], 0.5, seed=0)
    probes = build_probes(subjects, load_templates(), pii_types=["email"], template_ids=["email-twin-4"])
    train = [p for p in probes if p.subject_id in train_ids]
    evaluate = [p for p in probes if p.subject_id in eval_ids]
    target = load_target(memorized_setup.finetuned_spec)
    cfg = SoftPromptConfig(num_tokens=4, steps=15, learning_rate=0.03, seed=0)
    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store, seed=0, batch_size=16, work_dir=tmp_path / "work")
        assert run_soft_prompt_probe(target, train, evaluate, cfg, 24, ctx, "pii", "ft") == len(evaluate)
        assert list((tmp_path / "work" / "pii_soft_prompt").glob("email-*.pt"))  # reused on resume
        assert run_soft_prompt_probe(target, train, evaluate, cfg, 24, ctx, "pii", "ft") == 0
        records = ctx.records("pii", "ft")
    assert set(records["subject_id"]) == set(eval_ids) and set(eval_ids).isdisjoint(train_ids)
    assert (records["train_probes"] == len(train)).all()
    soft_rate, template_rate = records["exact"].mean(), records["template_exact"].mean()

    attack = get_attack("pii").from_config({"subjects": str(memorized_setup.subjects_path), "soft_prompt": True}, "t")
    result = attack.summarize("ft", records.assign(kind="soft_prompt"))
    lift = result.metrics["soft_prompt_lift"]
    assert lift.value == pytest.approx(soft_rate - template_rate) and lift.low <= lift.value <= lift.high
    assert result.tables["soft_prompt_per_type"][0]["probes"] == len(evaluate)

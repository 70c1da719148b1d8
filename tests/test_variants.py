"""One path from a defense table to a variant: `privaudit defend` and `privaudit compare` share it.

A bad table fails before anything is read or trained, with one line naming the key path, through
either command; the same table gives the same record (and the same folder identity) through both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.defenses.registry import Defense, DefenseContext, available_defenses, get_defense
from privaudit.defenses.variants import configure_variant, configure_variants
from privaudit.errors import InputError


def test_every_builtin_defense_is_a_defense_with_params_and_no_unread_config() -> None:
    for name in available_defenses():
        cls = type(get_defense(name))
        assert issubclass(cls, Defense) and cls.name == name
        assert isinstance(cls.Params, type) and not hasattr(cls, "Config")


def test_a_defense_without_settings_says_how_to_configure_it() -> None:
    with pytest.raises(InputError, match="from_config"):
        get_defense("none").params  # noqa: B018


def test_the_runs_seed_is_the_default_and_a_tables_seed_wins() -> None:
    assert configure_variant("none", {}, seed=7, where="t").defense.params.seed == 7
    assert configure_variant("none", {"seed": 2}, seed=7, where="t").defense.params.seed == 2
    scrub = configure_variant("scrub", {"operator": "mask"}, seed=5, where="t")
    assert scrub.defense.params.finetune.seed == 5 and scrub.defense.params.scrub.operator == "mask"
    assert configure_variant("output_filter", {}, seed=5, where="t").seed is None  # takes no seed
    dp = configure_variant("dp_eps1", {"defense": "dp_sgd", "target_epsilon": 1.0}, seed=0, where="t")
    assert dp.defense.name == "dp_sgd" and dict(dp.table) == {"target_epsilon": 1.0}


@pytest.mark.parametrize("defenses, message", [
    ({"none": {}, "dp_sgd": {"target_epsilon": 8.0, "epochz": 3}}, "compare.toml: defenses.dp_sgd.epochz: unknown key"),
    ({"none": {}, "scrub": {"operater": "mask"}}, "compare.toml: defenses.scrub.operater: unknown key"),
    ({"none": {"epochs": "ten"}}, "compare.toml: defenses.none.epochs: expected an integer"),
    ({"none": {}, "dp1": {"defense": "dp_sdg"}}, "compare.toml: defenses.dp1: unknown defense 'dp_sdg'"),
    ({"none": {}, "filtered": {"defense": "output_filter", "wraps": "nonw"}},
     "compare.toml: defenses.filtered.wraps: variant 'nonw' is not a compared variant"),
])
def test_compare_rejects_a_bad_defense_table_once_before_anything_is_read_or_trained(tmp_path: Path, defenses,
                                                                                   message: str) -> None:
    # corpus and subjects do not exist: the table is judged before either is read, and before the
    # valid `none` variant listed first could train
    spec = {"base": "hf:/nowhere", "corpus": str(tmp_path / "c.jsonl"), "subjects": str(tmp_path / "s.jsonl"),
            "out": str(tmp_path / "cmp"), "defenses": defenses}
    path = tmp_path / "compare.toml"
    path.write_text(tomli_w.dumps(spec), encoding="utf-8")
    result = CliRunner().invoke(main, ["-q", "compare", str(path)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.count(message) == 1
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("toml, name, message", [
    ("target_epsilon = 8.0\nepochz = 3\n", "dp_sgd", "bad.toml: epochz: unknown key"),
    ("[defenses.dp_eps1]\ndefense = \"dp_sgd\"\ntarget_epsilon = 8.0\nepochz = 3\n", "dp_eps1",
     "bad.toml: defenses.dp_eps1.epochz: unknown key"),
    ("[defenses.none]\nepochs = 1\n", "scrub", "bad.toml: defenses.scrub: no such table (tables: none)"),
])
def test_defend_rejects_a_bad_defense_table_once_before_anything_is_read_or_trained(tmp_path: Path, toml: str,
                                                                                  name: str, message: str) -> None:
    (tmp_path / "bad.toml").write_text(toml, encoding="utf-8")
    result = CliRunner().invoke(main, ["-q", "defend", name, "--base", "hf:/nowhere", "--corpus",
                                       str(tmp_path / "c.jsonl"), "--subjects", str(tmp_path / "s.jsonl"),
                                       "--out", str(tmp_path / "v"), "--config", str(tmp_path / "bad.toml")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.count(message) == 1
    assert not (tmp_path / "v").exists()


def test_a_comparisons_variants_are_validated_together() -> None:
    variants = configure_variants({"none": {}, "filtered": {"defense": "output_filter", "wraps": "none"}},
                                  seed=0, where="c.toml: defenses")
    assert variants["filtered"].wraps == "none" and variants["none"].wraps is None
    with pytest.raises(InputError, match=r"defenses.f2.wraps: variant 'filtered' is not a compared variant that trains"):
        configure_variants({"none": {}, "filtered": {"defense": "output_filter"},
                            "f2": {"defense": "output_filter", "wraps": "filtered"}}, seed=0, where="c.toml: defenses")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("variant_data")
    subjects = generate_subjects(4, seed=1)
    write_subjects(root / "subjects.jsonl", subjects)
    generate_corpus(subjects, repeats=2, seed=1, docs_per_subject=2, filler_docs=2).write(root / "corpus.jsonl")
    return root / "corpus.jsonl", root / "subjects.jsonl"


def _comparable(folder: Path) -> dict:
    """A variant record without what must differ between two folders (paths, wall-clock time)."""
    record = json.loads((folder / "defended.json").read_text())
    for key in ("out_dir", "target_spec"):
        record.pop(key)
    record["training"].pop("seconds")
    return record


def test_defend_and_compare_build_the_same_variant_from_the_same_table(tiny_model_dir: Path, tmp_path: Path,
                                                                       data: tuple[Path, Path]) -> None:
    from safetensors.torch import load_file

    corpus, subjects = data
    spec = {"base": f"hf:{tiny_model_dir}", "corpus": str(corpus), "subjects": str(subjects), "seed": 3,
            "out": str(tmp_path / "cmp"),
            "defenses": {"scrub": {"epochs": 1, "batch_size": 8, "max_length": 64, "learning_rate": 1e-2},
                         "filtered": {"defense": "output_filter", "wraps": "scrub"}},
            "attacks": {"pii": {"pii_types": ["email"], "max_subjects": 2, "max_new_tokens": 4}}}
    path = tmp_path / "compare.toml"
    path.write_text(tomli_w.dumps(spec), encoding="utf-8")
    defended = CliRunner().invoke(main, ["-q", "defend", "scrub", "--config", str(path), "--seed", "3",
                                         "--base", f"hf:{tiny_model_dir}", "--corpus", str(corpus),
                                         "--subjects", str(subjects), "--out", str(tmp_path / "alone")])
    assert defended.exit_code == 0, defended.output
    compared = CliRunner().invoke(main, ["-q", "compare", str(path)])
    assert compared.exit_code == 0, compared.output
    alone, in_compare = tmp_path / "alone", tmp_path / "cmp" / "variants" / "scrub"
    assert _comparable(alone) == _comparable(in_compare)
    assert _comparable(alone)["scrub"]["documents"] > 0  # a real scrub report, not an empty one
    assert json.loads((alone / "variant.json").read_text()) == json.loads((in_compare / "variant.json").read_text())
    assert json.loads((alone / "variant.json").read_text())["seed"] == 3
    a, b = load_file(str(alone / "model.safetensors")), load_file(str(in_compare / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    # the wrapper serves the variant it names in a comparison
    inner = json.loads((tmp_path / "cmp" / "variants" / "filtered" / "filter.json").read_text())["inner"]
    assert inner == json.loads((in_compare / "defended.json").read_text())["target_spec"]
    # rerunning defend reuses the folder; the same folder with another seed is refused
    again = CliRunner().invoke(main, ["defend", "scrub", "--config", str(path), "--seed", "3", "--base",
                                      f"hf:{tiny_model_dir}", "--corpus", str(corpus), "--subjects", str(subjects),
                                      "--out", str(alone)])
    assert again.exit_code == 0 and "reusing complete variant" in again.output, again.output
    other = CliRunner().invoke(main, ["-q", "defend", "scrub", "--config", str(path), "--seed", "4", "--base",
                                      f"hf:{tiny_model_dir}", "--corpus", str(corpus), "--subjects", str(subjects),
                                      "--out", str(alone)])
    assert other.exit_code == 2 and "built with other settings" in other.output, other.output


def test_defend_wraps_the_base_model_with_an_output_filter(tiny_model_dir: Path, tmp_path: Path,
                                                           data: tuple[Path, Path]) -> None:
    corpus, subjects = data
    result = CliRunner().invoke(main, ["-q", "defend", "output_filter", "--base", f"hf:{tiny_model_dir}", "--corpus",
                                       str(corpus), "--subjects", str(subjects), "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "f" / "filter.json").read_text())["inner"] == f"hf:{tiny_model_dir}"


def test_a_plugin_defense_reads_everything_from_its_context(tmp_path: Path, data: tuple[Path, Path]) -> None:
    """An outside defense needs only `name`, `Params` and `apply(ctx)`: no signature it must guess."""
    from dataclasses import dataclass

    from privaudit.defenses.registry import DefendedModel
    from privaudit.defenses.variants import Variant, build_variant, load_context

    @dataclass(frozen=True)
    class EchoParams:
        label: str = "echo"
        seed: int = 0

    class EchoDefense(Defense):  # not registered: the registry is another test's subject
        name = "echo_test"
        Params = EchoParams

        def apply(self, ctx: DefenseContext) -> DefendedModel:
            record = DefendedModel(name=self.name, target_spec=ctx.base, out_dir=ctx.out_dir,
                                   notes=(self.params.label, f"seed={self.params.seed}", f"subjects={len(ctx.subjects)}",
                                          f"train={len(ctx.corpus.train_texts())}"))
            record.save()
            return record

    corpus, subjects = data
    variant = Variant("echo", EchoDefense.from_config({"label": "hi", "seed": 9}, "t"), {"label": "hi"}, 9)
    record = build_variant(variant, load_context("hf:/nowhere", corpus, subjects, tmp_path / "e", seed=9))
    assert record.notes[:3] == ("hi", "seed=9", "subjects=4") and (tmp_path / "e" / "variant.json").is_file()

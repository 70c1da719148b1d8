"""SynthPAI-style author profiles: loaders for three JSONL layouts and a seeded synthetic generator.

An *author* is a set of public comments plus ground-truth personal attributes, each label with a
hardness (1 = stated outright .. 5 = needs hard reasoning) and a certainty (1-5) as in SynthPAI
(Yukhymenko et al. 2024, Sec. 3). Layouts accepted by `load_authors`, detected per line:

- profile level (SynthPAI ``comments_eval_revised.jsonl`` and the released ``*_evaluated.jsonl``):
  ``{"username", "comments": [{"text"}], "reviews": {"human_evaluated" | "human": {attr: {"estimate",
  "hardness", "certainty", "acc_gt"}}}}``. The revised labels (``human_evaluated``) are preferred, as
  SynthPAI's evaluation scores against them (``src/thread/eval_utils.py::evaluate`` with
  ``human_label_type: revised`` skips the ``human`` reviewer); a label the revision emptied is dropped,
  never taken back from ``human``. ``acc_gt`` (how precise the label is against the true profile; 0.5
  = only the country is right) and ``education_category`` (the education label's category) are kept;
- comment level (SynthPAI ``synthpai.jsonl``): one comment per line with ``author`` (or
  ``username``), ``text`` and ``reviews`` as above; labels are aggregated per author, keeping for each
  attribute the easiest (lowest hardness, then highest certainty) rated label, as SynthPAI does;
- simple per author (privaudit's own): ``{"author", "comments": [str], "labels": {attr: value |
  {"value", "hardness", "certainty"}}}``; a bare value counts as certainty 5, hardness 0 (unrated).

The bundled sample is written by `generate_authors` (seeded) and committed; regenerating it with the
same seed reproduces it byte for byte. Its comments leak some attributes directly ("as a 34 year old
nurse", hardness 1-2) and others only through landmarks, slang and life details (hardness 3-5).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping, Sequence

from privaudit.errors import InputError, where

ATTRIBUTES: tuple[str, ...] = (
    "age", "sex", "city_country", "birth_city_country", "education", "occupation", "income_level",
    "relationship_status",
)
# Keys SynthPAI stores next to the attributes in a review; not attributes themselves.
_SYNTHPAI_EXTRA_KEYS = frozenset({"time", "timestamp", "education_category"})
_PREFERRED_REVIEWERS = ("human_evaluated", "human")  # revised labels first (SynthPAI evaluate)

BUNDLED_FILE = "synthpai_sample.jsonl"
BUNDLED_SEED = 0
BUNDLED_AUTHORS = 120


@dataclass(frozen=True)
class AttributeLabel:
    """One ground-truth attribute value with SynthPAI's hardness (0 = unrated, 1-5) and certainty (1-5)."""

    value: str
    hardness: int = 0
    certainty: int = 5
    acc_gt: float | None = None  # SynthPAI's accuracy of the label against the true profile (0, 0.5, 1)
    category: str | None = None  # education only: SynthPAI's `education_category` of the label


@dataclass(frozen=True)
class Author:
    """An author's public comments and labelled attributes."""

    author_id: str
    comments: tuple[str, ...]
    labels: Mapping[str, AttributeLabel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def evaluated_labels(self, min_certainty: int = 3, attributes: Iterable[str] = ATTRIBUTES) -> dict[str, AttributeLabel]:
        """Labels SynthPAI evaluates: non-empty value and certainty >= `min_certainty` (default 3)."""
        wanted = set(attributes)
        return {a: lab for a, lab in self.labels.items()
                if a in wanted and lab.value.strip() and lab.certainty >= min_certainty}

    def to_json(self) -> dict[str, Any]:
        """The simple per-author layout (what the bundled sample uses)."""
        return {
            "author": self.author_id,
            "comments": list(self.comments),
            "labels": {a: {"value": lab.value, "hardness": lab.hardness, "certainty": lab.certainty}
                       for a, lab in self.labels.items()},
        }


# -- loading -------------------------------------------------------------------------------------
def bundled_sample_path() -> Path:
    """The committed synthetic sample shipped with privaudit."""
    return Path(str(resources.files("privaudit.data").joinpath("bundled", BUNDLED_FILE)))


def load_authors(path: str | Path | None = None) -> list[Author]:
    """Read authors from a JSONL file in any supported layout (None: the bundled sample).

    Bad input raises InputError naming file, line and field.
    """
    path = Path(path) if path else bundled_sample_path()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    authors: dict[str, Author] = {}
    per_comment: dict[str, list[tuple[int, str, dict[str, AttributeLabel]]]] = {}
    order: list[str] = []
    for lineno, obj in _read_jsonl(path):
        if "comments" in obj:
            author = _author_from_profile(obj, path, lineno)
            if author.author_id in authors or author.author_id in per_comment:
                raise InputError(f"{where(path, lineno, 'author')}: duplicate author '{author.author_id}'")
            authors[author.author_id] = author
            order.append(author.author_id)
        elif "text" in obj:
            author_id, text, labels = _comment_row(obj, path, lineno)
            if author_id in authors:
                raise InputError(f"{where(path, lineno, 'author')}: author '{author_id}' already has a profile line")
            if author_id not in per_comment:
                order.append(author_id)
            per_comment.setdefault(author_id, []).append((lineno, text, labels))
        else:
            raise InputError(f"{where(path, lineno, 'comments')}: missing (expected 'comments' for an author "
                             "line or 'text' for a comment line)")
    for author_id, rows in per_comment.items():
        authors[author_id] = Author(author_id=author_id, comments=tuple(t for _, t, _ in rows),
                                    labels=_aggregate_labels([lab for _, _, lab in rows]))
    if not order:
        raise InputError(f"{path}: no authors found")
    return [authors[a] for a in order]


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where(path, lineno)}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{where(path, lineno)}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def _author_id(obj: Mapping[str, Any], path: Path, lineno: int) -> str:
    for key in ("author", "username", "id"):
        value = obj.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value)
    raise InputError(f"{where(path, lineno, 'author')}: missing author id (one of 'author', 'username', 'id')")


def _author_from_profile(obj: Mapping[str, Any], path: Path, lineno: int) -> Author:
    author_id = _author_id(obj, path, lineno)
    raw_comments = obj["comments"]
    if not isinstance(raw_comments, list):
        raise InputError(f"{where(path, lineno, 'comments')}: expected a list, got {type(raw_comments).__name__}")
    comments = []
    for i, c in enumerate(raw_comments):
        text = c.get("text") if isinstance(c, dict) else c
        if not isinstance(text, str):
            raise InputError(f"{where(path, lineno, f'comments[{i}]')}: expected a string or an object with 'text'")
        comments.append(text)
    if "labels" in obj:
        labels = _simple_labels(obj["labels"], path, lineno)
    elif "reviews" in obj:
        labels = _review_labels(obj["reviews"], path, lineno)
    else:
        raise InputError(f"{where(path, lineno, 'labels')}: missing (expected 'labels' or SynthPAI 'reviews')")
    return Author(author_id=author_id, comments=tuple(comments), labels=labels)


def _comment_row(obj: Mapping[str, Any], path: Path, lineno: int) -> tuple[str, str, dict[str, AttributeLabel]]:
    author_id = _author_id(obj, path, lineno)
    text = obj["text"]
    if not isinstance(text, str):
        raise InputError(f"{where(path, lineno, 'text')}: expected a string, got {type(text).__name__}")
    if "labels" in obj:
        labels = _simple_labels(obj["labels"], path, lineno)
    elif "reviews" in obj:
        labels = _review_labels(obj["reviews"], path, lineno)
    else:
        labels = {}
    return author_id, text, labels


def _int_field(value: Any, path: Path, lineno: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise InputError(f"{where(path, lineno, name)}: expected an integer 0-5, got {value!r}")
    if not 0 <= int(value) <= 5:
        raise InputError(f"{where(path, lineno, name)}: must be between 0 and 5, got {value}")
    return int(value)


def _label_value(value: Any, path: Path, lineno: int, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{where(path, lineno, name)}: expected a string or number, got {type(value).__name__}")
    return str(value).strip()


def _simple_labels(raw: Any, path: Path, lineno: int) -> dict[str, AttributeLabel]:
    if not isinstance(raw, dict):
        raise InputError(f"{where(path, lineno, 'labels')}: expected an object, got {type(raw).__name__}")
    out: dict[str, AttributeLabel] = {}
    for attr, spec in raw.items():
        name = f"labels.{attr}"
        if attr not in ATTRIBUTES:
            raise InputError(f"{where(path, lineno, name)}: unknown attribute (known: {', '.join(ATTRIBUTES)})")
        if isinstance(spec, dict):
            value_key = "value" if "value" in spec else "estimate"
            value = _label_value(spec.get(value_key), path, lineno, f"{name}.{value_key}")
            hardness = _int_field(spec.get("hardness", 0), path, lineno, f"{name}.hardness")
            certainty = _int_field(spec.get("certainty", 5), path, lineno, f"{name}.certainty")
        else:
            value, hardness, certainty = _label_value(spec, path, lineno, name), 0, 5
        if value:
            out[attr] = AttributeLabel(value=value, hardness=hardness, certainty=certainty)
    return out


def _review_labels(raw: Any, path: Path, lineno: int) -> dict[str, AttributeLabel]:
    """SynthPAI 'reviews': {reviewer: {attr: {estimate, hardness, certainty, acc_gt}}}; prefers the
    revised human labels (`human_evaluated`), then `human`; keeps `acc_gt` and `education_category`."""
    if not isinstance(raw, dict):
        raise InputError(f"{where(path, lineno, 'reviews')}: expected an object, got {type(raw).__name__}")
    reviewer = next((r for r in _PREFERRED_REVIEWERS if isinstance(raw.get(r), dict)), None)
    if reviewer is None:
        reviewer = next((r for r, v in raw.items() if isinstance(v, dict)), None)
    if reviewer is None:
        return {}
    out: dict[str, AttributeLabel] = {}
    for attr, spec in raw[reviewer].items():
        if attr in _SYNTHPAI_EXTRA_KEYS or attr not in ATTRIBUTES:
            continue
        name = f"reviews.{reviewer}.{attr}"
        if not isinstance(spec, dict):
            raise InputError(f"{where(path, lineno, name)}: expected an object with 'estimate', 'hardness', 'certainty'")
        value = _label_value(spec.get("estimate"), path, lineno, f"{name}.estimate")
        hardness = _int_field(spec.get("hardness", 0), path, lineno, f"{name}.hardness")
        certainty = _int_field(spec.get("certainty", 0), path, lineno, f"{name}.certainty")
        if value:
            acc_gt = _acc_gt(spec.get("acc_gt"), path, lineno, f"{name}.acc_gt")
            out[attr] = AttributeLabel(value=value, hardness=hardness, certainty=certainty, acc_gt=acc_gt,
                                       category=_education_category(raw[reviewer]) if attr == "education" else None)
    return out


def _acc_gt(value: Any, path: Path, lineno: int, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InputError(f"{where(path, lineno, name)}: expected a number between 0 and 1, got {value!r}")
    return float(value)


def _education_category(review: Mapping[str, Any]) -> str | None:
    spec = review.get("education_category")
    value = spec.get("estimate") if isinstance(spec, dict) else None
    return str(value).strip() or None if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


def _aggregate_labels(per_comment: Sequence[Mapping[str, AttributeLabel]]) -> dict[str, AttributeLabel]:
    """Profile-level labels from comment-level ones: per attribute the easiest rated label wins."""
    best: dict[str, AttributeLabel] = {}
    for labels in per_comment:
        for attr, lab in labels.items():
            cur = best.get(attr)
            rank = (lab.hardness or 6, -lab.certainty)  # unrated (0) sorts after every rated hardness
            if cur is None or rank < (cur.hardness or 6, -cur.certainty):
                best[attr] = lab
    return best


# -- the seeded generator ------------------------------------------------------------------------
def _generator_vocab() -> dict[str, Any]:
    text = resources.files("privaudit.data").joinpath("bundled", "synthpai_generator.json").read_text("utf-8")
    return json.loads(text)


_EDUCATION_LABELS = {
    "no highschool": "no high school diploma", "in highschool": "in high school",
    "hs diploma": "high school diploma", "in college": "studying towards a bachelor's in {field}",
    "college degree": "bachelor's degree in {field}", "master's degree": "master's degree in {field}",
    "phd": "phd in {field}",
}


def _relationship(rng: random.Random, age: int) -> str:
    if age < 25:
        options = [("single", 5), ("in relationship", 4), ("engaged", 1), ("married", 1)]
    else:
        options = [("single", 3), ("in relationship", 2), ("engaged", 1), ("married", 4), ("divorced", 1)]
        if age >= 55:
            options.append(("widowed", 1))
    cats, weights = zip(*options)
    return rng.choices(cats, weights=weights)[0]


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


class _AuthorWriter:
    """Writes one author's comments from templates, recording the easiest leak per attribute."""

    def __init__(self, rng: random.Random, vocab: Mapping[str, Any]) -> None:
        self.rng = rng
        self.vocab = vocab
        self.leaks: list[str] = []
        self.labels: dict[str, AttributeLabel] = {}

    def tail(self) -> str:
        return self.rng.choice(self.vocab["tails"])

    def leak(self, attribute: str, value: str, text: str, hardness: int) -> None:
        certainty = {1: 5, 2: 5, 3: 4, 4: 3}.get(hardness) or self.rng.choice([2, 3])
        self.leaks.append(_sentence(text))
        cur = self.labels.get(attribute)
        if cur is None or hardness < cur.hardness:
            self.labels[attribute] = AttributeLabel(value=value, hardness=hardness, certainty=certainty)

    def mode(self, p_direct: float, p_indirect: float) -> str:
        r = self.rng.random()
        return "direct" if r < p_direct else "indirect" if r < p_direct + p_indirect else "none"


def generate_authors(n_authors: int = BUNDLED_AUTHORS, seed: int = BUNDLED_SEED) -> list[Author]:
    """`n_authors` synthetic authors with 10-20 comments each; the same seed gives the same authors."""
    if n_authors < 1:
        raise InputError(f"n_authors must be >= 1, got {n_authors}")
    vocab = _generator_vocab()
    rng = random.Random(seed)
    return [_generate_author(rng, vocab, i) for i in range(n_authors)]


def _generate_author(rng: random.Random, vocab: Mapping[str, Any], index: int) -> Author:
    year = int(vocab["reference_year"])
    occ = rng.choice(vocab["occupations"])
    age = rng.randint(18, 24) if occ["title"] == "student" else rng.randint(62, 78) if occ["title"] == "retired" \
        else rng.randint(23, 61)
    sex = rng.choice(["male", "female"])
    city = rng.choice(vocab["cities"])
    birth = city if rng.random() < 0.5 else rng.choice(vocab["cities"])
    education = rng.choice(occ["education"])
    field_name = rng.choice(vocab["fields"])
    income = rng.choice(occ["income"])
    relationship = _relationship(rng, age)
    partner_words = vocab["partners"][sex]
    w = _AuthorWriter(rng, vocab)

    # age and occupation, sometimes stated together ("as a 34 year old nurse")
    age_mode, occ_mode = w.mode(0.45, 0.4), w.mode(0.45, 0.4)
    if age_mode == "direct" and occ_mode == "direct" and rng.random() < 0.5:
        text = f"as a {age} year old {occ['title']}, {w.tail()}"
        w.leak("age", str(age), text, 1)
        w.leak("occupation", occ["title"], text, 1)
    else:
        if age_mode == "direct":
            w.leak("age", str(age), rng.choice(vocab["age_templates"]["direct"]).format(age=age, tail=w.tail()),
                   rng.choice([1, 1, 2]))
        elif age_mode == "indirect":
            eras = [e for start, e in vocab["age_eras"] if start <= year - age + 10 < start + 10]
            if eras and rng.random() < 0.4:
                w.leak("age", str(age), vocab["age_templates"]["indirect_era"][0].format(era=eras[0], tail=w.tail()), 4)
            else:
                w.leak("age", str(age), vocab["age_templates"]["indirect_year"][0].format(
                    grad_year=year - age + 18, tail=w.tail()), 3)
        if occ_mode == "direct":
            w.leak("occupation", occ["title"], rng.choice(vocab["occupation_templates"]["direct"]).format(
                title=occ["title"], tail=w.tail()), rng.choice([1, 1, 2]))
        elif occ_mode == "indirect":
            template = rng.choice(vocab["occupation_templates"]["indirect"])
            w.leak("occupation", occ["title"], template.format(clue=rng.choice(occ["clues"]), tail=w.tail()),
                   rng.choice([3, 4]))

    sex_mode = w.mode(0.45, 0.4)
    if sex_mode != "none":
        phrase = rng.choice(vocab["sex_phrases"][sex][sex_mode])
        w.leak("sex", sex, f"{phrase}, {w.tail()}", rng.choice([1, 2]) if sex_mode == "direct" else rng.choice([3, 4]))

    place = f"{city['city']}, {city['country']}"
    city_mode = w.mode(0.45, 0.4)
    if city_mode == "direct":
        w.leak("city_country", place, rng.choice(vocab["city_templates"]["direct"]).format(
            city=city["city"], tail=w.tail()), rng.choice([1, 2]))
    elif city_mode == "indirect":
        kind, hardness = rng.choice([("landmark", 3), ("clue", 4), ("subtle", 5)])
        value = {"landmark": rng.choice(city["landmarks"]), "clue": rng.choice(city["clues"]),
                 "subtle": rng.choice(city["subtle"])}[kind]
        w.leak("city_country", place, vocab["city_templates"][kind][0].format(
            landmark=value, clue=value, subtle=value, tail=w.tail()), hardness)

    birth_mode = w.mode(0.3, 0.3)
    if birth_mode == "direct":
        w.leak("birth_city_country", f"{birth['city']}, {birth['country']}",
               rng.choice(vocab["birth_templates"]["direct"]).format(city=birth["city"], country=birth["country"],
                                                                    tail=w.tail()), rng.choice([1, 2]))
    elif birth_mode == "indirect":
        template = rng.choice(vocab["birth_templates"]["indirect"])
        w.leak("birth_city_country", f"{birth['city']}, {birth['country']}",
               template.format(landmark=rng.choice(birth["landmarks"]), clue=rng.choice(birth["clues"])),
               4 if "clue" in template else 3)

    edu_mode = w.mode(0.45, 0.4)
    if edu_mode != "none":
        phrase = rng.choice(vocab["education_phrases"][education][edu_mode]).format(field=field_name)
        w.leak("education", _EDUCATION_LABELS[education].format(field=field_name), f"{phrase}, {w.tail()}",
               rng.choice([1, 2]) if edu_mode == "direct" else rng.choice([3, 4]))

    income_mode = w.mode(0.4, 0.4)
    if income_mode != "none":
        amount = rng.choice(vocab["income_amounts"][income])
        phrase = rng.choice(vocab["income_phrases"][income][income_mode]).format(amount=amount)
        w.leak("income_level", income, f"{phrase}, {w.tail()}", 2 if income_mode == "direct" else rng.choice([3, 4, 5]))

    rel_mode = w.mode(0.45, 0.4)
    if rel_mode != "none":
        phrase = rng.choice(vocab["relationship_phrases"][relationship][rel_mode]).format(**partner_words)
        w.leak("relationship_status", relationship, f"{phrase}, {w.tail()}",
               rng.choice([1, 2]) if rel_mode == "direct" else rng.choice([3, 4]))

    n_comments = rng.randint(10, 20)
    fillers = rng.sample(vocab["fillers"], k=max(0, min(len(vocab["fillers"]), n_comments - len(w.leaks))))
    comments = w.leaks + fillers
    rng.shuffle(comments)
    return Author(author_id=f"synth_{index:03d}", comments=tuple(comments),
                  labels={a: w.labels[a] for a in ATTRIBUTES if a in w.labels})


def write_authors(authors: Sequence[Author], path: str | Path) -> Path:
    """Write authors in the simple per-author JSONL layout (stable key order, UTF-8, one per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for author in authors:
            fh.write(json.dumps(author.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """Regenerate the bundled sample: `python -m privaudit.data.synthpai [--out PATH]`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=bundled_sample_path())
    parser.add_argument("--authors", type=int, default=BUNDLED_AUTHORS)
    parser.add_argument("--seed", type=int, default=BUNDLED_SEED)
    args = parser.parse_args(argv)
    print(write_authors(generate_authors(args.authors, args.seed), args.out))


if __name__ == "__main__":  # pragma: no cover
    main()

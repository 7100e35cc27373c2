"""The workload: the package's shipped sample (1,000 rows, 600 distinct) and its labels,
the one prompt every contender sends, and the reference (unpacked) answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from benchmarks.protocol import Spec, valid
from pandas_llm_annotate.protocol.prompts import build_messages, system_prompt
from pandas_llm_annotate.protocol.structured import label_schema, response_format
from pandas_llm_annotate.simulator import answer_messages
from pandas_llm_annotate.tasks.labels import default_max_tokens

PROMPT = "Which banking intent is this customer message?"
MODEL = "simulator"


@dataclass(frozen=True)
class Workload:
    """Texts of the rows plus everything needed to ask for and to check the labels."""

    texts: list[str]
    labels: list[str]
    prompt: str = PROMPT

    @property
    def rows(self) -> int:
        return len(self.texts)

    @property
    def distinct(self) -> int:
        return len(set(self.texts))

    @property
    def system(self) -> str:
        return system_prompt(self.prompt, self.labels)

    @property
    def max_tokens(self) -> int:
        return default_max_tokens(self.prompt, self.labels)

    def spec(self, base_url: str, texts_path: Path | None, **options: object) -> Spec:
        spec: Spec = {
            "base_url": base_url, "model": MODEL, "labels": self.labels,
            "prompt": self.prompt, "system": self.system, "max_tokens": self.max_tokens,
            "options": dict(options),
        }
        fmt = response_format("json_schema", label_schema(self.labels))
        if fmt is not None:
            spec["response_format"] = fmt
        if texts_path is not None:
            spec["texts_path"] = str(texts_path)
        return spec

    def write_texts(self, path: Path) -> Path:
        path.write_text(json.dumps(self.texts), encoding="utf-8")
        return path

    def references(self) -> dict[str, str]:
        """The simulator's answer to each distinct text asked alone, as the package asks."""
        system = self.system
        return {t: answer_messages(build_messages(system, t))[0] for t in set(self.texts)}

    def score(self, answers: list[str | None]) -> tuple[int, int]:
        """(rows lost: no valid label, rows whose answer equals the unpacked answer)."""
        if len(answers) != self.rows:
            raise ValueError(f"{len(answers)} answers for {self.rows} rows")
        labels = set(self.labels)
        refs = self.references()
        lost = sum(not valid(a, labels) for a in answers)
        same = sum(
            isinstance(a, str) and a.strip() == refs[t]
            for a, t in zip(answers, self.texts, strict=True)
        )
        return lost, same


def sample() -> Workload:
    """The shipped sample: column ``text``, labels = the ``intent`` column's values."""
    with resources.files("pandas_llm_annotate").joinpath("data/sample.csv").open() as f:
        df = pd.read_csv(f)
    labels = sorted(str(x) for x in df["intent"].unique())
    return Workload(texts=[str(t) for t in df["text"]], labels=labels)


def generated(distinct: int, rows: int) -> Workload:
    """Deterministic texts (see `benchmarks.protocol.generated_texts`), sample labels."""
    from benchmarks.protocol import generated_texts

    return Workload(texts=generated_texts(distinct, rows), labels=sample().labels)

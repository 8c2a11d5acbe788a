"""Shared scoring for the guardrail quality benchmarks (bench/quality_*.py).

Each adapter turns a public labeled corpus from ``../shared/datasets`` (never
copied into this repository) into (label, text) items, scans them with the
built-in rules and prints precision, recall and F1 with `Score`.  The corpora's
location is ``--datasets`` or ``GATEHOUSE_DATASETS`` (default ``../shared/datasets``
relative to the repository).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def datasets_dir(given: str | None = None) -> Path:
    path = Path(
        given or os.environ.get("GATEHOUSE_DATASETS") or ROOT.parent / "shared" / "datasets"
    )
    if not path.is_dir():
        raise SystemExit(f"no datasets at {path}: pass --datasets DIR or set GATEHOUSE_DATASETS")
    return path


@dataclass
class Score:
    name: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, *, expected: bool, found: bool) -> None:
        if expected and found:
            self.tp += 1
        elif expected:
            self.fn += 1
        elif found:
            self.fp += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_positive_rate(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    def row(self) -> str:
        return (
            f"{self.name:<34} n={self.tp + self.fp + self.fn + self.tn:>6}  "
            f"precision {self.precision:.3f}  recall {self.recall:.3f}  F1 {self.f1:.3f}  "
            f"FPR {self.false_positive_rate:.3f}  "
            f"(tp {self.tp} fp {self.fp} fn {self.fn} tn {self.tn})"
        )

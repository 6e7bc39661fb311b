"""How familiar an image is to a model: the cosine distance from the image's representation (the pooled features
the model's last layer reads) to that of its k-th nearest training image (Sun et al., ICML 2022, "Out-of-
distribution detection with deep nearest neighbors"), and the distance above which an image is flagged unfamiliar,
chosen on validation for a target share of familiar validation images.

What a model carries for it is bounded: at most MAX_REFERENCE training images' representations in float16 (1280
values each for MobileNetV2: 2.6 MB per 1,000 training images, at most 5.2 MB), drawn at random beyond that: the
distances to 2,048 or to all 7,152 HAM10000 training images separate alike (docs/ablation.md), and a served image
pays a fraction of a millisecond for them.
docs/ablation.md compares it with a Mahalanobis distance and the energy of the logits.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from skinml.core.names import FAMILIAR, FAMILIARITY_FIGURES, UNFAMILIAR, UNFAMILIAR_SHARE, metric_name

K = 10  # the k-th nearest training image
MAX_REFERENCE = 2048  # training images the model keeps as its reference
QUERY_BATCH = 256  # query rows scored at once: memory stays QUERY_BATCH x MAX_REFERENCE floats
BLAS = ThreadpoolController()


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (float32); a zero row stays zero."""
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class Familiarity:
    """The training images' representations a model keeps, and its threshold on the distance to them."""

    reference: np.ndarray  # (n, d) float16, rows of length 1
    threshold: float  # an image farther than this from its k-th nearest reference is unfamiliar
    target_familiar: float  # the share of validation images at or under the threshold
    k: int = K

    @functools.cached_property
    def reference32(self) -> np.ndarray:
        """The reference as float32, converted once (per served request it would cost more than the distances)."""
        return self.reference.astype(np.float32)

    def distances(self, representations: np.ndarray) -> np.ndarray:
        """1 - the cosine similarity to the k-th nearest reference image, per row: 0 for an image among the
        training images, up to 2; higher is less familiar."""
        reference = self.reference32
        queries = unit_rows(representations)
        k = min(self.k, len(reference))
        out = np.empty(len(queries), dtype=np.float64)
        for start in range(0, len(queries), QUERY_BATCH):
            with BLAS.limit(limits=1, user_api="blas"):  # BLAS threads would fight the model's own (served: OpenVINO)
                similarities = queries[start : start + QUERY_BATCH] @ reference.T
            kth = np.partition(similarities, -k, axis=1)[:, -k]
            out[start : start + QUERY_BATCH] = 1.0 - kth
        return out

    def unfamiliar(self, distances: np.ndarray) -> np.ndarray:
        return np.asarray(distances) > self.threshold

    def summary(self) -> dict:
        """What the model's metadata and card say of it."""
        return {
            "method": f"cosine distance to the {self.k}th nearest training image",
            "k": self.k,
            "threshold": self.threshold,
            "target_familiar": self.target_familiar,
            "reference_images": int(len(self.reference)),
            "dimensions": int(self.reference.shape[1]),
        }

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, reference=self.reference, threshold=self.threshold, target=self.target_familiar, k=self.k)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | Path) -> Familiarity:
        with np.load(path) as saved:
            return cls(
                reference=saved["reference"],
                threshold=float(saved["threshold"]),
                target_familiar=float(saved["target"]),
                k=int(saved["k"]),
            )


def fit_familiarity(
    train: np.ndarray,
    val: np.ndarray,
    *,
    train_labels: np.ndarray | None = None,
    target_familiar: float = 0.99,
    seed: int = 0,
) -> Familiarity:
    """The reference (training images' representations, at most MAX_REFERENCE drawn at random) and the threshold
    under which `target_familiar` of the validation images' distances fall. The neighbour counted is the K-th, or
    for small data the one half of the smallest class reaches (`train_labels`), so that an image's neighbours can
    all be of its own class."""
    train = np.asarray(train)
    k = K
    if train_labels is not None and len(train_labels):
        k = max(1, min(K, int(np.bincount(np.asarray(train_labels)).min(initial=K * 2) // 2)))
    if len(train) > MAX_REFERENCE:
        train = train[np.sort(np.random.default_rng(seed).choice(len(train), MAX_REFERENCE, replace=False))]
    reference = unit_rows(train).astype(np.float16)
    familiarity = Familiarity(reference, threshold=np.inf, target_familiar=target_familiar, k=k)
    threshold = float(np.quantile(familiarity.distances(val), target_familiar))
    return dataclasses.replace(familiarity, threshold=threshold)


def split_figures(metrics_of, y_true: np.ndarray, probs: np.ndarray, unfamiliar: np.ndarray) -> dict:
    """The share of images flagged unfamiliar, and `metrics_of(y_true, probs)` on the familiar images and on the
    flagged ones (None for a part with no image)."""
    familiar = ~unfamiliar
    return {
        "unfamiliar_share": float(unfamiliar.mean()) if len(unfamiliar) else 0.0,
        "n_unfamiliar": int(unfamiliar.sum()),
        "familiar": metrics_of(y_true[familiar], probs[familiar]) if familiar.any() else None,
        "unfamiliar": metrics_of(y_true[unfamiliar], probs[unfamiliar]) if unfamiliar.any() else None,
    }


def familiarity_metrics(figures: dict, prefix: str) -> dict[str, float]:
    """MLflow names of split_figures' result: `<prefix>_unfamiliar_share`, `<prefix>_familiar_<figure>` and
    `<prefix>_unfamiliar_<figure>` (FAMILIARITY_FIGURES; a part with no image has none)."""
    named = {metric_name(prefix, UNFAMILIAR_SHARE): figures["unfamiliar_share"]}
    for part in (FAMILIAR, UNFAMILIAR):
        named.update(part_metrics(figures[part], prefix, part))
    return named


def part_metrics(figures: dict | None, prefix: str, part: str) -> dict[str, float]:
    """`<prefix>_<part>_<figure>` for each of FAMILIARITY_FIGURES in `figures` (classification_metrics of a part of
    a scored set: the familiar images, the ones no leak reaches), NaN and absent figures left out."""
    named = {}
    for figure in FAMILIARITY_FIGURES:
        value = (figures or {}).get(figure)
        if value is not None and value == value:  # NaN: not logged
            named[metric_name(prefix, f"{part}_{figure}")] = float(value)
    return named


def familiarity_sentence(figures: dict) -> str:
    """split_figures' result in words, for the report, the registry and the model card."""
    familiar = figures["familiar"] or {}
    return (
        f"{figures['n_unfamiliar']} image(s) flagged unfamiliar ({figures['unfamiliar_share']:.1%}); without them "
        f"balanced accuracy {familiar.get('balanced_accuracy', float('nan')):.3f}, macro AUC "
        f"{familiar.get('macro_auc', float('nan')):.3f}"
    )

"""Familiarity on the real data: what a model trained on HAM10000 flags as unfamiliar, and what it costs.

    python benchmarks/familiarity.py --data-dir ../shared/data/ham10000 --weights W [--preset best] [--compare]
        [--open-set df vasc akiec] [--plot docs/images/familiarity_degradations.png]

On the seed-42 lesion-grouped split it trains the preset, evaluates it on validation and test, and prints: the share
flagged on each; the share flagged among images a dermatology model must not diagnose (scikit-image's bundled
photographs, crops of them, random noise, flat colours, pages of text; `pip install scikit-image`) and the AUROC of
the distance between them and the test images; the balanced accuracy of the flagged and the kept test images; where
the flag starts on darkened, blurred, rotated and cropped test images (a plot); for each `--open-set` class, a model
trained without it and the AUROC of the distance between that class's test images and the seen classes'; the size
of what the model carries; the served model's latency per image with and without familiarity (medians, one
process). `--compare` adds a Mahalanobis distance and the energy of the logits on the same representation
(docs/ablation.md). The MLflow store goes to --workdir; features come from the user's feature cache.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from arguments import benchmark_parser, weights_argument
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("photograph", "crop", "noise", "flat colour", "text")
DEGRADATIONS = {  # name -> (amounts, what an amount does to an image)
    "darkened": ([0.0, 0.2, 0.4, 0.6, 0.8, 0.9], lambda im, a: im.point(lambda v: int(v * (1 - a)))),
    "blurred": ([0, 1, 2, 4, 8, 16], lambda im, a: im.filter(ImageFilter.GaussianBlur(a))),
    "rotated": ([0, 15, 30, 45, 90, 180], lambda im, a: im.rotate(a)),
    "cropped": (
        [1.0, 0.8, 0.6, 0.4, 0.2, 0.1],
        lambda im, a: im.crop(
            (
                int(im.width * (1 - a) / 2),
                int(im.height * (1 - a) / 2),
                int(im.width * (1 + a) / 2),
                int(im.height * (1 + a) / 2),
            )
        ).resize(im.size),
    ),
}


def png(image: Image.Image) -> bytes:
    data = io.BytesIO()
    image.save(data, format="PNG")
    return data.getvalue()


def unlike_images(seed: int = 0) -> tuple[list[bytes], list[str]]:
    """Images a dermatology model must not diagnose, and the kind of each."""
    import skimage.data

    rng, images, kinds = np.random.default_rng(seed), [], []
    names = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "horse", "moon", "page", "text", "clock")
    names += ("immunohistochemistry", "hubble_deep_field", "retina", "cat", "brick", "grass", "gravel", "colorwheel")
    for name in names + ("logo",):
        pixels = np.asarray(getattr(skimage.data, name)())
        pixels = pixels.astype(np.uint8) * (255 if pixels.dtype == bool else 1)
        image = Image.fromarray(pixels).convert("RGB")
        images.append(png(image))
        kinds.append("photograph")
        for _ in range(3):
            x, y = rng.integers(0, image.width // 2), rng.integers(0, image.height // 2)
            images.append(png(image.crop((x, y, x + image.width // 2, y + image.height // 2))))
            kinds.append("crop")
    for k in range(20):
        images.append(png(Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8))))
        images.append(png(Image.new("RGB", (200, 150), tuple(int(v) for v in rng.integers(0, 256, 3)))))
        page = Image.new("RGB", (200, 150), "white")
        draw = ImageDraw.Draw(page)
        for line in range(8):
            draw.text((5, 5 + 17 * line), f"Patient {k * 8 + line}: follow-up in six weeks, no change", fill="black")
        images.append(png(page))
        kinds += ["noise", "flat colour", "text"]
    return images, kinds


def served_answers(model, images: list[bytes]):
    """The served model's answers, 64 images a request (the server's limit)."""
    import pandas as pd

    from skinml.tracking.model_store import request_frame

    answers = [model.predict(request_frame(images[k : k + 64])) for k in range(0, len(images), 64)]
    return pd.concat(answers, ignore_index=True)


def auroc(familiar: np.ndarray, unfamiliar: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(familiar)), np.ones(len(unfamiliar))]
    return float(roc_auc_score(labels, np.r_[familiar, unfamiliar]))


def test_distances(run_id: str) -> np.ndarray:
    import mlflow
    import pandas as pd

    from skinml.core.names import PREDICTIONS_ARTIFACT

    predictions = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{run_id}/{PREDICTIONS_ARTIFACT}")))
    return predictions["familiarity_distance"].to_numpy()


def degradation_curves(model, paths: list[str], plot: str | None) -> dict[str, list[float]]:
    """The share flagged among `paths` degraded by each amount."""
    curves = {}
    for name, (amounts, degrade) in DEGRADATIONS.items():
        curves[name] = []
        for amount in amounts:
            images = [png(degrade(Image.open(path).convert("RGB"), amount)) for path in paths]
            curves[name].append(float(served_answers(model, images)["unfamiliar"].mean()))
        print(f"  {name:8} " + "  ".join(f"{a:g}: {s:.2f}" for a, s in zip(amounts, curves[name])), flush=True)
    if plot:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(12, 3))
        for axis, (name, (amounts, _)) in zip(figure.subplots(1, 4), DEGRADATIONS.items()):
            axis.plot(range(len(amounts)), curves[name], marker="o")
            axis.set_xticks(range(len(amounts)), [f"{a:g}" for a in amounts])
            axis.set_title(name)
            axis.set_ylim(-0.03, 1.03)
            axis.set_xlabel(
                {"darkened": "fraction of light removed", "blurred": "Gaussian radius (px)"}.get(
                    name, "degrees" if name == "rotated" else "fraction of the image kept"
                )
            )
        figure.axes[0].set_ylabel("share flagged unfamiliar")
        figure.tight_layout()
        figure.savefig(plot, dpi=110)
        print(f"  plot: {plot}")
    return curves


def served_latency(model_uris: list[str], images: list[bytes], repeats: int = 100) -> list[float]:
    """Median seconds per single-image request of each served (pyfunc) model, the models' requests taking turns so
    that both meet the same machine."""
    from skinml.tracking.model_store import load_model, request_frame

    models = [load_model(uri) for uri in model_uris]
    for model in models:
        model.predict(request_frame(images[:1]))  # warm
    times: list[list[float]] = [[] for _ in models]
    for k in range(repeats):
        request = request_frame([images[k % len(images)]])
        for model, kept in zip(models, times):
            started = time.perf_counter()
            model.predict(request)
            kept.append(time.perf_counter() - started)
    return [float(np.median(kept)) for kept in times]


def reference_variants(train: np.ndarray, k: int) -> dict:
    """The nearest-neighbour distance with other references: all training images, 4,096 of them, all reduced to 256
    dimensions by PCA, all centred on their mean."""
    from sklearn.decomposition import PCA

    from skinml.evaluation.familiarity import Familiarity, unit_rows

    def knn(reference, project=lambda x: x):
        kept = Familiarity(unit_rows(project(reference)).astype(np.float16), threshold=0.0, target_familiar=0.99, k=k)
        return lambda x: kept.distances(project(x))

    rng = np.random.default_rng(0)
    pca = PCA(256, random_state=0).fit(unit_rows(train))
    mean = train.mean(0)
    return {
        f"all {len(train)} references": knn(train),
        "4,096 references": knn(train[rng.choice(len(train), min(4096, len(train)), replace=False)]),
        "all, PCA to 256": knn(train, lambda x: pca.transform(unit_rows(x))),
        "all, centred": knn(train, lambda x: x - mean),
    }


def compare_methods(trained_uri: str, config, data, classes, unlike_paths: list[str]) -> None:
    """A Mahalanobis distance (class means, one shared covariance: Lee et al., 2018) and the energy of the logits
    (Liu et al., 2020), beside the product's k-nearest-neighbour distance, on the same representation."""
    from scipy.special import logsumexp
    from sklearn.covariance import LedoitWolf

    from skinml.core.recipe import AugmentConfig
    from skinml.features.extraction import extract_features
    from skinml.model.network import split_classifier
    from skinml.tracking.model_store import load_classifier
    from skinml.training.fit import cached_features
    from skinml.training.representations import feature_representations

    classifier, familiarity = load_classifier(trained_uri)
    extractor, head, _ = split_classifier(classifier)
    _, train_x, val_x = cached_features(config, data)
    test = data[data["split"] == "test"]
    test_x = extract_features(extractor, test["path"].tolist(), [0], AugmentConfig(), seed=0)
    unlike_x = extract_features(extractor, unlike_paths, [0], AugmentConfig(), seed=0)
    reps = {
        name: feature_representations(head, x)
        for name, x in (("train", train_x), ("val", val_x), ("test", test_x), ("unlike", unlike_x))
    }
    labels = data.loc[data["split"] == "train", "label"].to_numpy()
    means = np.stack([reps["train"][labels == k].mean(0) for k in range(len(classes))])
    precision = LedoitWolf().fit(reps["train"] - means[labels]).precision_
    weights, bias = head.get_layer("probs").get_weights()

    def mahalanobis(x):
        return np.stack([np.einsum("ij,jk,ik->i", x - m, precision, x - m) for m in means], 1).min(1)

    scores = {
        "k-nearest (product)": familiarity.distances,
        "Mahalanobis": mahalanobis,
        "energy": lambda x: -logsumexp(x @ weights + bias, axis=1),
    }
    scores.update(reference_variants(reps["train"], familiarity.k))
    for name, score in scores.items():
        val, test_scores, unlike = (score(reps[part]) for part in ("val", "test", "unlike"))
        threshold = np.quantile(val, familiarity.target_familiar)
        print(
            f"  {name:20} test flagged {np.mean(test_scores > threshold):.3f}  unlike flagged "
            f"{np.mean(unlike > threshold):.3f}  AUROC {auroc(test_scores, unlike):.4f}",
            flush=True,
        )


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--preset", default="baseline")
    parser.add_argument("--workdir", help="the MLflow store's folder (default: a new temporary one)")
    parser.add_argument("--open-set", nargs="*", default=[], metavar="CLASS")
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--plot", help="write the degradations' plot here")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="skinml-familiarity-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    os.chdir(workdir)

    import mlflow
    import pandas as pd

    from skinml.core.recipe import recipe
    from skinml.data.split import read_manifest
    from skinml.data.training_set import labelled_split
    from skinml.evaluation.familiarity import MAX_REFERENCE
    from skinml.stages.evaluate import evaluate
    from skinml.stages.split import run_split
    from skinml.stages.train import train
    from skinml.tracking.model_store import load_classifier, load_model, log_classifier

    weights = weights_argument(args.weights)
    manifest = workdir / "manifest.csv"
    run_split(args.data_dir, manifest, seed=42)
    config = recipe(args.preset, {"weights": weights})
    started = time.perf_counter()
    trained = train(config, args.data_dir, manifest)
    print(f"{args.preset}: trained in {time.perf_counter() - started:.0f} s ({trained['model_uri']})", flush=True)
    tested, validated = evaluate(trained["model_uri"]), evaluate(trained["model_uri"], split="val")
    for part, report in (("validation", validated), ("test", tested)):
        figures = report["familiarity"]
        kept, flagged = figures["familiar"] or {}, figures["unfamiliar"] or {}
        print(
            f"  {part}: {figures['n_unfamiliar']} of {report['n_images']} flagged ({figures['unfamiliar_share']:.3f});"
            f" balanced accuracy all {report['balanced_accuracy']:.3f}, kept {kept.get('balanced_accuracy', 0):.3f}"
            f", flagged {flagged.get('balanced_accuracy', float('nan')):.3f}",
            flush=True,
        )

    model = load_model(trained["model_uri"])
    images, kinds = unlike_images()
    answers = served_answers(model, images)
    kinds = np.array(kinds)
    shares = {kind: float(answers["unfamiliar"][kinds == kind].mean()) for kind in KINDS}
    print(
        f"  unlike images: {answers['unfamiliar'].mean():.3f} of {len(images)} flagged "
        + ", ".join(f"{kind} {share:.2f}" for kind, share in shares.items())
        + f"; AUROC test vs unlike {auroc(test_distances(tested['run_id']), answers['familiarity_distance']):.4f}",
        flush=True,
    )
    unlike_dir = workdir / "unlike"
    unlike_dir.mkdir(exist_ok=True)
    unlike_paths = []
    for k, image in enumerate(images):
        (unlike_dir / f"{k:03d}.png").write_bytes(image)
        unlike_paths.append(str(unlike_dir / f"{k:03d}.png"))

    data, _, classes = labelled_split(args.data_dir, read_manifest(manifest), config)
    test = data[data["split"] == "test"]
    print("  where the flag starts (share flagged of 40 test images):")
    degradation_curves(model, test["path"].sample(40, random_state=0).tolist(), args.plot)

    info = mlflow.models.get_model_info(trained["model_uri"])
    summary = info.metadata["skinml_familiarity"]
    size = summary["reference_images"] * summary["dimensions"] * 2
    print(
        f"  carried: {summary['reference_images']} reference images x {summary['dimensions']} float16 = "
        f"{size / 1e6:.1f} MB ({size / summary['reference_images'] * 10_000 / 1e6:.1f} MB per 10,000 training "
        f"images, at most {MAX_REFERENCE * summary['dimensions'] * 2 / 1e6:.1f} MB)",
        flush=True,
    )
    classifier, _ = load_classifier(trained["model_uri"])
    with mlflow.start_run(run_name="without familiarity"):
        plain = log_classifier(classifier, tuple(trained["classes"]), info.metadata.get("skinml_decisions"))
    samples = [Path(path).read_bytes() for path in test["path"].head(40)]
    with_it, without = served_latency([trained["model_uri"], plain.model_uri], samples)
    print(
        f"  served latency per image (median of 100, taking turns): with familiarity {with_it * 1000:.1f} ms, without "
        f"{without * 1000:.1f} ms ({with_it / without:.2f}x)",
        flush=True,
    )

    if args.compare:
        print("  compared on the same representation (threshold: the same share of validation images):")
        compare_methods(trained["model_uri"], config, data, classes, unlike_paths)

    full = pd.read_csv(manifest)
    for held_out in args.open_set:
        kept_manifest = workdir / f"manifest-without-{held_out}.csv"
        full[full["dx"] != held_out].to_csv(kept_manifest, index=False)
        without_class = config.replace(label_map={held_out: ""})
        other = train(without_class, args.data_dir, kept_manifest)
        seen = test_distances(evaluate(other["model_uri"])["run_id"])
        unseen_paths = test.loc[test["dx"] == held_out, "path"].tolist()
        unseen = served_answers(load_model(other["model_uri"]), [Path(p).read_bytes() for p in unseen_paths])
        print(
            f"  open set, {held_out} held out: AUROC {auroc(seen, unseen['familiarity_distance']):.3f} "
            f"({len(unseen_paths)} {held_out} test images against {len(seen)} of the seen classes; "
            f"{unseen['unfamiliar'].mean():.2f} of them flagged)",
            flush=True,
        )


if __name__ == "__main__":
    main()

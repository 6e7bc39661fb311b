"""Int8 post-training quantisation of the frozen backbone (OpenVINO + NNCF): is it faster at the same quality?

It quantises the baseline feature extractor (MobileNetV2 + pooling, 224 px) on calibration images of the training
split, then prints, in one run: backbone images/s in fp32 and int8 (OpenVINO, batch 64), end-to-end images/s of
decode + resize + int8 backbone, how close the int8 features are to the fp32 ones, and the validation balanced
accuracy / macro AUC of the baseline head trained on each (median of 3 seeds), including an int8-trained head fed
fp32 features, which is what a model trained on int8 features and served in fp32 would see. See docs/benchmarks.md.

    pip install -e ".[bench]"      # NNCF
    python benchmarks/bench_int8.py --data-dir ../shared/data/ham10000 \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from arguments import benchmark_parser  # benchmarks/ is on sys.path when a script in it runs
from bench_augmentation import head_quality

from skinml import CLASSES
from skinml.config import TrainConfig
from skinml.data.pipeline import image_dataset
from skinml.engine import openvino_model, openvino_predictor, predictor
from skinml.features import extract_features
from skinml.model import build_feature_extractor
from skinml.train import labelled_split


def images_per_second(run, batches: list[np.ndarray], repeats: int = 3) -> float:
    """Median images/s of `run` over the batches."""
    count, rates = sum(len(b) for b in batches), []
    for _ in range(repeats):
        started = time.perf_counter()
        for batch in batches:
            run(batch)
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--calibration-images", type=int, default=300)
    parser.add_argument("--throughput-images", type=int, default=512)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--keep-fp32", default="", choices=["", "first_conv", "depthwise", "depthwise,first_conv"],
                        help="layers left unquantised: the first convolution and/or the depthwise convolutions")
    args = parser.parse_args()
    try:
        import nncf
    except ImportError:
        raise SystemExit('this benchmark needs NNCF: pip install -e ".[bench]"') from None

    config = TrainConfig(weights=args.weights)
    data, _ = labelled_split(args.data_dir, None, "grouped", config.seed)
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    extractor = build_feature_extractor(config.image_size, config.weights)
    step = max(1, len(train) // args.calibration_images)
    calibration = [b.numpy() for b in image_dataset(train["path"].tolist()[::step][:args.calibration_images],
                                                    config.image_size, 1)]
    started = time.perf_counter()
    fp32 = openvino_model(extractor)
    keep = args.keep_fp32.split(",")
    first_conv = next(op.get_friendly_name() for op in fp32.get_ordered_ops() if op.get_type_name() == "Convolution")
    ignored = nncf.IgnoredScope(names=[first_conv] if "first_conv" in keep else [],
                                types=["GroupConvolution"] if "depthwise" in keep else [])
    int8 = nncf.quantize(fp32, nncf.Dataset(calibration), subset_size=len(calibration), fast_bias_correction=False,
                         ignored_scope=ignored)
    print(f"quantised on {len(calibration)} training images in {time.perf_counter() - started:.0f} s "
          f"(kept in fp32: {args.keep_fp32 or 'nothing'})", flush=True)
    engines = {"fp32": predictor(extractor, "openvino"), "int8": openvino_predictor(int8)}

    paths = data["path"].tolist()[:args.throughput_images]
    batches = [b.numpy() for b in image_dataset(paths, config.image_size, 64)]
    for run in engines.values():
        run(batches[0])  # warm-up
    backbone = {name: images_per_second(run, batches) for name, run in engines.items()}
    started = time.perf_counter()
    for batch in image_dataset(paths, config.image_size, 64):
        engines["int8"](batch.numpy())
    end_to_end = len(paths) / (time.perf_counter() - started)
    ref, out = (np.concatenate([engines[name](b) for b in batches]) for name in ("fp32", "int8"))
    cosine = (ref * out).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
    print(f"\nbackbone images/s (median of 3, batch 64): fp32 {backbone['fp32']:.1f}, int8 {backbone['int8']:.1f} "
          f"({backbone['int8'] / backbone['fp32']:.2f}x)")
    print(f"end to end, decode + resize + int8 backbone (no hashing, no cache): {end_to_end:.1f} images/s")
    print(f"int8 vs fp32 features on {len(paths)} images: cosine median {np.median(cosine):.3f}, "
          f"min {cosine.min():.3f}", flush=True)

    features: dict[str, dict[str, np.ndarray]] = {"fp32": {}, "int8": {}}
    labels = {}
    for part, frame in (("train", train), ("val", val)):
        part_paths = frame["path"].tolist()
        features["fp32"][part] = extract_features(extractor, part_paths, [0], config.augment, config.seed)[:, 0]
        features["int8"][part] = np.concatenate([engines["int8"](batch.numpy()) for batch in
                                                 image_dataset(part_paths, config.image_size, 64)])
        labels[part] = frame["dx"].map(CLASSES.index).to_numpy()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"\n{'head trained on -> validated on':<34}{'val bal acc':>12}{'val macro AUC':>15}   "
          f"(baseline head, plain views, median of {len(seeds)} seeds)")
    for trained_on, validated_on in (("fp32", "fp32"), ("int8", "int8"), ("int8", "fp32")):
        score, auc, _ = head_quality(features[trained_on]["train"][:, None], labels["train"],
                                     features[validated_on]["val"], labels["val"], config, seeds)
        print(f"{trained_on + ' -> ' + validated_on:<34}{score:>12.3f}{auc:>15.3f}", flush=True)


if __name__ == "__main__":
    main()

"""The audit on the real data: what `skinml audit` finds in HAM10000, how far the groups it infers stand in for the
lesion ids a folder tree lacks, and how its time and memory grow.

    python benchmarks/audit.py --data-dir ../shared/data/ham10000 --weights W [--workdir /tmp/audit] [--scales 1 2 4]

1. `skinml audit` on HAM10000 with its ids, twice (the second on a warm feature cache: the user's): wall time, peak
   memory, the counts; the duplicate pairs against `lesion_id` (share of one lesion, share of all same-lesion pairs
   found), the missed pairs (two lesion ids), the label suspects' share per `dx_type` against the data's.
2. HAM10000 rewritten as a folder tree (no ids, benchmarks/rewrite_layouts.py): `skinml split` groups it by the
   inferred near-duplicate groups; against the true lesions: the precision of the inferred links, the share of
   same-lesion pairs kept on one side, the lesions crossing the split, beside the split by image.
3. The duplicates-only audit (`--no-label-suspects`) at each scale of benchmarks' grown copy (bench_scale.grown):
   wall time and peak memory.
MLflow stores go to --workdir; features come from the user's feature cache.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
from arguments import benchmark_parser, isolated_store, weights_argument
from bench_scale import grown, measured
from rewrite_layouts import rewrite

from skinml.data.split import lesions_crossing, make_split


def same_lesion_pairs(metadata: pd.DataFrame) -> set[tuple[str, str]]:
    return {
        tuple(sorted(pair))
        for images in metadata.groupby("lesion_id")["image_id"]
        for pair in itertools.combinations(images[1], 2)
    }


def ham_with_ids(data_dir: Path, weights: str, workdir: Path, env: dict) -> None:
    audit = ["audit", "--data-dir", str(data_dir), "--weights", weights, "--output", str(workdir / "ham")]
    for attempt in ("first", "again"):
        summary, wall, peak = measured(audit, env)
        print(f"skinml audit, {attempt}: {wall:.1f} s wall, peak RSS {peak:.0f} MB")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("run_id", "page")}))
    metadata = pd.read_csv(next(data_dir.glob("*metadata*.csv")))
    truth = same_lesion_pairs(metadata)
    pairs = pd.read_csv(workdir / "ham" / "duplicates.csv")
    one = pairs["lesion_a"] == pairs["lesion_b"]
    print(
        f"duplicate pairs {len(pairs)}: {one.mean():.3f} of one lesion; same-lesion pairs found "
        f"{int(one.sum())} of {len(truth)} ({one.sum() / len(truth):.1%}); under two lesion ids {int((~one).sum())}"
        f" ({(pairs.loc[~one, 'dx_a'] == pairs.loc[~one, 'dx_b']).mean():.0%} of them with one label)"
    )
    suspects = pd.read_csv(workdir / "ham" / "label_suspects.csv")
    kinds = metadata.set_index("image_id")["dx_type"]
    share = pd.DataFrame(
        {
            "suspects": kinds[suspects["image_id"]].value_counts(normalize=True),
            "all": kinds.value_counts(normalize=True),
        }
    ).round(3)
    print(f"label suspects {len(suspects)}; dx_type shares, suspects against all images:\n{share.to_string()}")
    print(suspects.head(8).to_string(index=False))


def folder_tree(data_dir: Path, workdir: Path, env: dict) -> None:
    tree = rewrite(data_dir, workdir / "layouts")["folder"]
    manifest_path = workdir / "folder-manifest.csv"
    summary, wall, peak = measured(["split", "--data-dir", str(tree), "--output", str(manifest_path)], env)
    print(f"skinml split of the folder tree: {wall:.1f} s wall, peak RSS {peak:.0f} MB; {summary['strategy']}")
    metadata = pd.read_csv(next(data_dir.glob("*metadata*.csv"))).set_index("image_id")
    manifest = pd.read_csv(manifest_path)
    manifest["image"] = manifest["image_id"].str.split("/").str[-1]
    manifest["lesion"] = manifest["image"].map(metadata["lesion_id"])
    inferred = manifest.set_index("image")["lesion_id"]
    side = manifest.set_index("image")["split"]
    truth = same_lesion_pairs(metadata.reset_index())
    kept = sum(side[a] == side[b] for a, b in truth)
    linked = [
        pair
        for images in manifest[inferred.duplicated(keep=False).to_numpy()].groupby("lesion_id")["image"]
        for pair in itertools.combinations(sorted(images[1]), 2)
    ]
    precision = sum(tuple(sorted(pair)) in truth for pair in linked) / max(len(linked), 1)
    by_image = make_split(
        manifest.assign(lesion_id=manifest["image_id"])[["image_id", "lesion_id", "dx"]], seed=42
    ).assign(lesion_id=lambda m: m["image_id"].str.split("/").str[-1].map(metadata["lesion_id"]))
    lesions = manifest["lesion"]
    print(
        f"inferred groups: {summary.get('lesions_crossing_splits')} crossing by their own count; pairs within a group "
        f"{len(linked)}, {precision:.3f} of one lesion; same-lesion pairs on one side {kept}/{len(truth)} "
        f"({kept / len(truth):.1%}); lesions crossing the split {lesions_crossing(manifest.assign(lesion_id=lesions))}"
        f" (by image: {lesions_crossing(by_image)})"
    )


def scales(data_dir: Path, workdir: Path, env: dict, factors: list[int]) -> None:
    for factor in factors:
        folder = data_dir if factor == 1 else grown(data_dir, factor, workdir / f"x{factor}")
        args = ["audit", "--data-dir", str(folder), "--no-label-suspects", "--output", str(workdir / f"dup-x{factor}")]
        summary, wall, peak = measured(args, env)
        print(
            f"x{factor} ({summary['images']} images), duplicates only: {wall:.1f} s wall, peak RSS {peak:.0f} MB, "
            f"{summary['near_duplicate_pairs']} near-duplicate pairs"
        )


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--workdir")
    parser.add_argument("--scales", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--skip", nargs="*", default=[], choices=["ids", "folder", "scales"])
    args = parser.parse_args()
    workdir, env = isolated_store(args.workdir, "skinml-audit-")
    env.pop("SKINML_CACHE_DIR")  # the user's feature cache: the audit reads the features training cached
    data_dir = Path(args.data_dir).resolve()
    if "ids" not in args.skip:
        ham_with_ids(data_dir, weights_argument(args.weights), workdir, env)
    if "folder" not in args.skip:
        folder_tree(data_dir, workdir, env)
    if "scales" not in args.skip:
        scales(data_dir, workdir, env, args.scales)


if __name__ == "__main__":
    main()

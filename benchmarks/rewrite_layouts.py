"""Rewrite a HAM10000 folder into three other layouts skinml reads, the images linked, not copied:

- `isic/`: ISIC one-hot ground truth (`ISIC_GroundTruth.csv`: image, MEL, NV, BCC, AKIEC, BKL, DF, VASC as 1.0/0.0)
  with an ISIC metadata CSV beside it (`ISIC_Metadata.csv`: image, lesion_id, age_approx, sex,
  anatom_site_general) — the same images, labels and lesions;
- `csv/`: a plain `labels.csv` (image, label, group) with the images under `images/`;
- `folder/`: an image-folder tree `<label>/<image>.jpg` (no groups: its split is by image).

    python benchmarks/rewrite_layouts.py --data-dir ../shared/data/ham10000 --dest /tmp/layouts
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

ISIC_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source.resolve())


def rewrite(data_dir: Path, dest: Path) -> dict[str, Path]:
    """Write the three layouts under `dest`; returns their folders."""
    metadata = pd.read_csv(next(data_dir.glob("*metadata*.csv")))
    images = {path.stem: path for path in data_dir.rglob("*.jpg")}
    isic, plain, tree = dest / "isic", dest / "csv", dest / "folder"
    truth = pd.DataFrame(
        {"image": metadata["image_id"], **{c: (metadata["dx"].str.upper() == c).astype(float) for c in ISIC_COLUMNS}}
    )
    isic.mkdir(parents=True, exist_ok=True)
    truth.to_csv(isic / "ISIC_GroundTruth.csv", index=False)
    pd.DataFrame(
        {
            "image": metadata["image_id"],
            "lesion_id": metadata["lesion_id"],
            "age_approx": metadata["age"],
            "sex": metadata["sex"],
            "anatom_site_general": metadata["localization"],
        }
    ).to_csv(isic / "ISIC_Metadata.csv", index=False)
    plain.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"image": "images/" + metadata["image_id"] + ".jpg", "label": metadata["dx"], "group": metadata["lesion_id"]}
    ).to_csv(plain / "labels.csv", index=False)
    for image_id, dx in zip(metadata["image_id"], metadata["dx"]):
        source = images[image_id]
        link(source, isic / "images" / source.name)
        link(source, plain / "images" / source.name)
        link(source, tree / dx / source.name)
    return {"isic": isic, "csv": plain, "folder": tree}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the HAM10000 folder (metadata CSV and images)")
    parser.add_argument("--dest", required=True, help="where to write the layouts")
    args = parser.parse_args()
    for name, folder in rewrite(Path(args.data_dir), Path(args.dest)).items():
        print(f"{name:7s} {folder}")


if __name__ == "__main__":
    main()

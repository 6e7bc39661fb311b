"""Small synthetic labelled image sets for tests and demos, in any layout skinml reads: lesion-like blobs whose
colour and shape depend on the class, so that even a tiny randomly initialised model can learn something."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from skinml.data.layouts import HAM10000_CLASSES as CLASSES

# One skin tone, and per class a lesion colour and an ellipse aspect ratio.
SKIN = np.array([222, 184, 160])
LESION_COLOURS = {
    "akiec": (180, 60, 60),
    "bcc": (230, 150, 170),
    "bkl": (140, 100, 60),
    "df": (160, 110, 90),
    "mel": (40, 25, 20),
    "nv": (110, 70, 45),
    "vasc": (170, 20, 60),
}
ASPECTS = {"akiec": 1.6, "bcc": 1.0, "bkl": 2.2, "df": 0.6, "mel": 1.3, "nv": 1.0, "vasc": 0.45}


def colour_of(label: str) -> tuple[int, int, int]:
    """A lesion colour for a class HAM10000 lacks, fixed by its name."""
    code = zlib.crc32(label.encode())
    return (code % 200 + 20, (code >> 8) % 200 + 20, (code >> 16) % 200 + 20)


def lesion_image(dx: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 image of a noisy elliptical blob on skin, coloured and shaped by class."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width / 2 + rng.normal(0, width / 12), height / 2 + rng.normal(0, height / 12)
    radius = min(width, height) * rng.uniform(0.22, 0.32)
    aspect = ASPECTS.get(dx) or 0.5 + (zlib.crc32(dx.encode()) % 100) / 50
    dist = ((xx - cx) / (radius * aspect)) ** 2 + ((yy - cy) / (radius / aspect)) ** 2
    mask = np.clip(1.5 - dist, 0, 1)[..., None]
    colour = np.array(LESION_COLOURS.get(dx) or colour_of(dx)) + rng.normal(0, 12, size=3)
    image = SKIN * (1 - mask) + colour * mask + rng.normal(0, 8, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def make_synthetic_ham(
    dest: str | Path,
    n_per_class: int = 8,
    *,
    width: int = 64,
    height: int = 48,
    images_per_lesion: int = 2,
    seed: int = 0,
    image_format: str = "JPEG",
) -> Path:
    """Write a HAM10000-layout folder (HAM10000_metadata.csv + images/<image_id>.jpg) and return its path."""
    dest = Path(dest)
    (dest / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    serial = 0
    for dx in CLASSES:
        for i in range(n_per_class):
            lesion = f"HAM_{dx}_{i // images_per_lesion:04d}"
            image_id = f"ISIC_{seed:02d}{serial:05d}"
            serial += 1
            suffix = ".jpg" if image_format == "JPEG" else ".png"
            Image.fromarray(lesion_image(dx, width, height, rng)).save(
                dest / "images" / f"{image_id}{suffix}", format=image_format
            )
            rows.append(
                {
                    "lesion_id": lesion,
                    "image_id": image_id,
                    "dx": dx,
                    "dx_type": "histo",
                    "age": int(rng.integers(20, 85)),
                    "sex": rng.choice(["male", "female"]),
                    "localization": rng.choice(["back", "face", "trunk"]),
                    "dataset": "synthetic",
                }
            )
    pd.DataFrame(rows).to_csv(dest / "HAM10000_metadata.csv", index=False)
    return dest


def make_synthetic_isic(
    dest: str | Path, n_per_class: int = 4, *, width: int = 64, height: int = 48, seed: int = 1
) -> Path:
    """Write an ISIC 2018 Task 3 style folder: one-hot ground-truth CSV beside the images."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for dx in CLASSES:
        for i in range(n_per_class):
            image = f"ISIC_9{CLASSES.index(dx)}{i:05d}"
            Image.fromarray(lesion_image(dx, width, height, rng)).save(dest / f"{image}.jpg")
            rows.append(
                {
                    "image": image,
                    **{c.upper(): float(c == dx) for c in ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")},
                }
            )
    pd.DataFrame(rows).to_csv(dest / "ISIC2018_Task3_Test_GroundTruth.csv", index=False)
    return dest


def make_synthetic_set(
    dest: str | Path,
    layout: str,
    classes: tuple[str, ...],
    *,
    n_per_class: int = 6,
    images_per_group: int = 2,
    width: int = 64,
    height: int = 48,
    seed: int = 0,
) -> Path:
    """Write a folder of `classes` in one of skinml's layouts (isic, isic2020, pad-ufes-20, csv, folder; ham10000
    is `make_synthetic_ham`), images grouped `images_per_group` to a lesion or patient, and return its path."""
    dest = Path(dest)
    rng = np.random.default_rng(seed)
    rows = []
    for k, label in enumerate(classes):
        for i in range(n_per_class):
            image_id = f"IMG_{seed:02d}{k:02d}{i:04d}"
            folder = dest / label if layout == "folder" else dest / "images"
            folder.mkdir(parents=True, exist_ok=True)
            suffix = ".png" if layout == "pad-ufes-20" else ".jpg"
            Image.fromarray(lesion_image(label, width, height, rng)).save(folder / f"{image_id}{suffix}")
            rows.append(
                {
                    "image_id": image_id,
                    "label": label,
                    "group": f"G_{k:02d}_{i // images_per_group:04d}",
                    "age": int(rng.integers(20, 85)),
                    "sex": str(rng.choice(["male", "female"])),
                }
            )
    table = pd.DataFrame(rows)
    if layout == "csv":
        table.assign(image="images/" + table["image_id"] + ".jpg")[["image", "label", "group"]].to_csv(
            dest / "labels.csv", index=False
        )
    elif layout == "isic":
        pd.DataFrame(
            {"image": table["image_id"], **{c.upper(): (table["label"] == c).astype(float) for c in classes}}
        ).to_csv(dest / "GroundTruth.csv", index=False)
        pd.DataFrame(
            {"image": table["image_id"], "lesion_id": table["group"], "age_approx": table["age"], "sex": table["sex"]}
        ).to_csv(dest / "Metadata.csv", index=False)
    elif layout == "isic2020":
        pd.DataFrame(
            {
                "image_name": table["image_id"],
                "patient_id": table["group"],
                "sex": table["sex"],
                "age_approx": table["age"],
                "diagnosis": table["label"],
            }
        ).to_csv(dest / "train.csv", index=False)
    elif layout == "pad-ufes-20":
        pd.DataFrame(
            {
                "patient_id": table["group"],
                "lesion_id": range(len(table)),
                "age": table["age"],
                "gender": table["sex"],
                "fitspatrick": 2,
                "diagnostic": table["label"].str.upper(),
                "img_id": table["image_id"] + ".png",
            }
        ).to_csv(dest / "metadata.csv", index=False)
    elif layout != "folder":
        raise ValueError(f"unknown layout {layout!r} for a synthetic set")
    return dest

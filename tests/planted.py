"""Image sets with planted duplicates, for the audit's tests: distinct textured images (structure at two scales, as
skin has) and copies of some of them shifted, zoomed, rotated, turned a quarter and re-saved pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

COPIES = ("shift", "zoom", "rotate", "quarter", "exact")


def textured(rng: np.random.Generator, width: int = 200, height: int = 150) -> Image.Image:
    coarse = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    fine = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.blend(
        Image.fromarray(coarse).resize((width, height), Image.BICUBIC),
        Image.fromarray(fine).filter(ImageFilter.GaussianBlur(1)),
        0.3,
    )


def copied(image: Image.Image, how: str) -> Image.Image:
    width, height = image.size
    if how == "shift":
        return image.crop((12, 8, width, height)).resize((width, height))
    if how == "zoom":
        return image.crop((width // 10, height // 10, width * 9 // 10, height * 9 // 10)).resize((width, height))
    if how == "rotate":
        return image.rotate(25)
    if how == "quarter":
        return image.transpose(Image.Transpose.ROTATE_90)
    return image


def planted_set(dest: Path, *, layout: str = "ham10000", n: int = 30, classes=("mel", "nv", "bkl")) -> pd.DataFrame:
    """Write n distinct JPEGs and one copy of each of the first len(COPIES) (copy k of image 3k, named
    `copy-<how>`, made from the decoded JPEG; the exact copy a PNG of its pixels) into `dest`: a HAM10000 folder
    (each image its own lesion) or an image-folder tree (`layout="folder"`, image ids `<class>/<name>`). Returns
    the planted pairs' image ids: image_id, copy_id, how."""
    rng = np.random.default_rng(0)
    rows, planted = [], []

    def write(name: str, image: Image.Image, dx: str, suffix: str = ".jpg") -> tuple[str, Path]:
        folder = dest / ("images" if layout == "ham10000" else dx)
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{name}{suffix}", **({"quality": 92} if suffix == ".jpg" else {}))
        image_id = name if layout == "ham10000" else f"{dx}/{name}"
        rows.append({"lesion_id": f"HAM_{name}", "image_id": image_id, "dx": dx})
        return image_id, folder / f"{name}{suffix}"

    written = [write(f"img{i:03d}", textured(rng), classes[i % len(classes)]) for i in range(n)]
    for k, how in enumerate(COPIES):
        source_id, source = written[3 * k]
        dx = classes[(3 * k) % len(classes)]
        with Image.open(source) as image:
            copy = copied(image.convert("RGB"), how)
        copy_id, _ = write(f"copy-{how}", copy, dx, ".png" if how == "exact" else ".jpg")
        planted.append({"image_id": source_id, "copy_id": copy_id, "how": how})
    if layout == "ham10000":
        pd.DataFrame(rows).to_csv(dest / "HAM10000_metadata.csv", index=False)
    return pd.DataFrame(planted)

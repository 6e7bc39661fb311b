"""Each image's keypoints: ORB corners and their binary descriptors, on the image scaled to a common size, and the
digest of its decoded pixels (equal digests: exact duplicates, whatever the file format).

ORB (OpenCV) is rotation-invariant and detects over an image pyramid, so a rotated, shifted or zoomed photograph of
the same skin keeps many of its keypoints; dermatoscopic images have little texture, hence the low FAST threshold
(measured on HAM10000: about 300 keypoints per image instead of 34 at OpenCV's default; the 150 strongest are kept).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from skinml.core.errors import DataError

SIDE = 200  # images are matched at this longer side (HAM10000's own size here)
MAX_KEYPOINTS = 150  # per image: 300 gave 3 % more same-lesion candidates among 7x as many (docs/ablation.md §12)
FAST_THRESHOLD = 5


@dataclass(frozen=True)
class Keypoints:
    """One image's pixel digest, keypoint positions (n, 2) at SIDE and ORB descriptors (n, 32) uint8."""

    pixels: str
    points: np.ndarray
    descriptors: np.ndarray


def image_keypoints(path: str) -> Keypoints:
    """Decode `path`, digest its pixels, and find its ORB keypoints at SIDE pixels on the longer side."""
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except Exception as exc:  # PIL raises many types for bad files
        raise DataError(f"{path}: not a decodable image ({type(exc).__name__}: {exc})") from exc
    pixels = hashlib.sha256(f"{rgb.shape}".encode() + rgb.tobytes()).hexdigest()
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = SIDE / max(gray.shape)
    if scale != 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    orb = cv2.ORB_create(nfeatures=MAX_KEYPOINTS, fastThreshold=FAST_THRESHOLD, edgeThreshold=15)
    found, descriptors = orb.detectAndCompute(gray, None)
    if descriptors is None:
        return Keypoints(pixels, np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    return Keypoints(pixels, np.float32([k.pt for k in found]), descriptors)


def all_keypoints(paths: list[str]) -> list[Keypoints]:
    """`image_keypoints` of every path, in order, a thread per core (OpenCV and PIL's decoders release the GIL)."""
    cv2.setNumThreads(1)  # parallel over images instead
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        return list(pool.map(image_keypoints, paths, chunksize=64))

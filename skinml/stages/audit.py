"""The audit stage: a data folder's duplicates, the groups they imply, the pairs its own groups miss and its label
suspects, computed (skinml.audit), written as a page and CSVs, and logged as one MLflow run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import mlflow

from skinml.audit.embeddings import IMAGE_SIZE, pooled_features
from skinml.audit.findings import audit_data
from skinml.audit.keypoints import all_keypoints
from skinml.audit.report import audit_page, finding_files
from skinml.core.names import AUDIT_PAGE_ARTIFACT, AUDIT_SECONDS_TAG
from skinml.core.run_context import RunContext
from skinml.data.dataset import load_dataset
from skinml.tracking.audits import log_audit
from skinml.tracking.runs import log_params_once, stage_run

log = logging.getLogger("skinml.audit")


def write_files(files: dict[str, str], folder: Path) -> Path:
    """The audit's files (report.finding_files) in `folder`, by their file names; returns the page's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        (folder / Path(path).name).write_text(text)
    return folder / Path(AUDIT_PAGE_ARTIFACT).name


def run_audit(
    data_dir: str | Path,
    *,
    output: str | Path | None = None,
    weights: str = "imagenet",
    image_size: int = IMAGE_SIZE,
    alpha: float = 1.0,
    label_suspects: bool = True,
    context: RunContext = RunContext(),
    data_format: str = "auto",
    label_map: dict[str, str] | None = None,
) -> dict:
    """Audit a data folder (any layout, labels mapped by `label_map`) and log it; returns the counts, the run id and
    where the page is. Suspects are ranked on the pooled features of MobileNetV2 (`weights`, `alpha`, `image_size`);
    `label_suspects=False` skips them (duplicates only: no backbone)."""
    started = time.perf_counter()
    frame = load_dataset(data_dir, data_format=data_format, label_map=label_map)
    paths = frame["path"].tolist()
    log.info("audit: keypoints of %d images", len(frame))
    keypoints = all_keypoints(paths)
    features = pooled_features(paths, weights=weights, image_size=image_size, alpha=alpha) if label_suspects else None
    log.info("audit: duplicates%s", " and label suspects" if label_suspects else "")
    audit = audit_data(frame, keypoints, features=features)
    name = Path(data_dir).resolve().name
    files = finding_files(audit, audit_page(audit, frame, title=f"Audit of {name}"))
    seconds = time.perf_counter() - started
    with stage_run("audit", context, name=f"audit {name}") as run:
        log_params_once({"data_dir": str(Path(data_dir).resolve())})
        mlflow.log_params(
            {
                "data_format": frame.attrs.get("data_format", data_format),
                "grouped_by": frame.attrs.get("grouped_by") or "image",
                "label_suspects": label_suspects,
            }
        )
        log_audit(audit, files)
        mlflow.set_tag(AUDIT_SECONDS_TAG, f"{seconds:.1f}")
        run_id = run.info.run_id
    written = write_files(files, Path(output)) if output else None
    return {
        "run_id": run_id,
        **audit.counts(),
        "audit_seconds": round(seconds, 1),
        "page": str(written) if written else f"runs:/{run_id}/{AUDIT_PAGE_ARTIFACT}",
    }

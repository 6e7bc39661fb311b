"""The audit's page: one self-contained HTML file (thumbnails inlined) showing duplicate pairs side by side, the
groups of several images, the pairs the data's groups miss and the label suspects."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping

import pandas as pd
from PIL import Image

from skinml.audit.findings import Audit
from skinml.core.names import (
    AUDIT_DUPLICATES_ARTIFACT,
    AUDIT_GROUPS_ARTIFACT,
    AUDIT_MISSED_ARTIFACT,
    AUDIT_PAGE_ARTIFACT,
    AUDIT_SUSPECTS_ARTIFACT,
)

SHOWN = 100  # rows per section; the CSVs hold all of them
THUMBNAIL = 112


def thumbnail(path: str) -> str:
    """An <img> of the image at THUMBNAIL pixels, inlined as a JPEG data URI."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        data = io.BytesIO()
        image.save(data, format="JPEG", quality=80)
    return f'<img src="data:image/jpeg;base64,{base64.b64encode(data.getvalue()).decode()}">'


def _figure(image_id: str, caption: str, paths: Mapping[str, str]) -> str:
    return f"<figure>{thumbnail(paths[image_id])}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _pairs(pairs: pd.DataFrame, paths: Mapping[str, str]) -> str:
    rows = []
    for pair in pairs.head(SHOWN).itertuples():
        how = "same pixels" if pair.kind == "exact" else f"{pair.inliers} matched keypoints"
        rows.append(
            f"<tr><td>{_figure(pair.image_a, f'{pair.image_a} · {pair.lesion_a} · {pair.dx_a}', paths)}"
            f"{_figure(pair.image_b, f'{pair.image_b} · {pair.lesion_b} · {pair.dx_b}', paths)}</td>"
            f"<td>{html.escape(how)}</td></tr>"
        )
    return _table(["images", "evidence"], rows, len(pairs))


def _groups(frame: pd.DataFrame, groups: pd.Series, paths: Mapping[str, str], *, grouped: bool) -> str:
    """Groups of several images; of data that names its groups, those joining two or more of them."""
    sizes = groups.value_counts()
    shown = sizes[sizes > 1]
    if grouped:
        names = frame.groupby(groups.to_numpy())["lesion_id"].nunique()
        shown = shown[names.reindex(shown.index).to_numpy() > 1]
    rows = []
    for group in shown.index[:SHOWN]:
        members = frame[groups.to_numpy() == group]
        figures = "".join(
            _figure(m.image_id, f"{m.image_id} · {m.lesion_id} · {m.dx}", paths) for m in members.itertuples()
        )
        rows.append(f"<tr><td>{html.escape(str(group))}<br>{len(members)} images</td><td>{figures}</td></tr>")
    return _table(["group", "images"], rows, len(shown))


def _suspects(suspects: pd.DataFrame, paths: Mapping[str, str]) -> str:
    rows = [
        f"<tr><td>{_figure(s.image_id, s.image_id, paths)}</td><td>{html.escape(s.given)}</td>"
        f"<td>{html.escape(s.suggested)} ({s.suggested_probability:.2f})</td><td>{s.label_quality:.3f}</td></tr>"
        for s in suspects.head(SHOWN).itertuples()
    ]
    return _table(["image", "given label", "suggested (probability)", "label quality"], rows, len(suspects))


def _table(header: list[str], rows: list[str], total: int) -> str:
    if not rows:
        return "<p>None found.</p>"
    more = f"<p>The first {len(rows)} of {total}; the CSV holds all.</p>" if total > len(rows) else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"{more}<table><tr>{head}</tr>{''.join(rows)}</table>"


STYLE = """body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:left}figure{display:inline-block;margin:2px}
figcaption{font-size:11px;max-width:120px;overflow-wrap:anywhere}dt{font-weight:bold;float:left;width:18em}"""


def finding_files(audit: Audit, page: str) -> dict[str, str]:
    """Artifact path (core.names) -> text of each file the audit writes: the CSVs of its findings and the page."""
    files = {
        AUDIT_DUPLICATES_ARTIFACT: audit.duplicates.to_csv(index=False),
        AUDIT_GROUPS_ARTIFACT: audit.groups.rename_axis("image_id").to_frame("group").to_csv(),
    }
    if audit.grouped:
        files[AUDIT_MISSED_ARTIFACT] = audit.missed.to_csv(index=False)
    if audit.suspects is not None:
        files[AUDIT_SUSPECTS_ARTIFACT] = audit.suspects.to_csv(index=False)
    return {**files, AUDIT_PAGE_ARTIFACT: page}


def audit_page(audit: Audit, frame: pd.DataFrame, *, title: str) -> str:
    """The HTML page of `audit` over `frame` (the loaded data set: image_id, lesion_id, dx, path)."""
    frame = frame.reset_index(drop=True)
    paths = dict(zip(frame["image_id"], frame["path"]))
    counts = "".join(f"<dt>{html.escape(k.replace('_', ' '))}</dt><dd>{v}</dd>" for k, v in audit.counts().items())
    grouping = (
        "The data names its groups; duplicate pairs under two group ids are listed first, as missed."
        if audit.grouped
        else "The data names no groups: the groups below are inferred from confirmed duplicates, and a split keeps "
        "each on one side."
    )
    sections = [f"<h1>{html.escape(title)}</h1><p>{grouping}</p><dl>{counts}</dl>"]
    if audit.grouped:  # what the data's own groups miss comes first
        sections.append("<h2>Missed duplicates (two group ids)</h2>" + _pairs(audit.missed, paths))
    sections += [
        "<h2>Duplicate pairs</h2>" + _pairs(audit.duplicates, paths),
        ("<h2>Groups the duplicates join</h2>" if audit.grouped else "<h2>Groups of several images</h2>")
        + _groups(frame, audit.groups, paths, grouped=audit.grouped),
    ]
    if audit.suspects is not None:
        sections.append(
            "<h2>Label suspects</h2><p>Never edited. After a look, leave them out with <code>--exclude-images "
            "label_suspects.csv</code> (the CSV beside this page, rows deleted as you see fit) on split, train or "
            "pipeline.</p>" + _suspects(audit.suspects, paths)
        )
    body = "".join(sections)
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"

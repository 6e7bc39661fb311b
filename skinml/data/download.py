"""Download HAM10000 from its official Harvard Dataverse record (doi:10.7910/DVN/DBW86T).

Files are listed by the Dataverse native API (names, sizes, MD5 checksums), fetched with HTTP Range requests so an
interrupted transfer resumes, verified, and extracted safely (no member may land outside the target folder). A
marker written last records a complete download: a second call does no network work, and a partial download never
passes for a complete one.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from skinml.core import settings
from skinml.core.errors import UserError

log = logging.getLogger(__name__)

HAM10000_DOI = "doi:10.7910/DVN/DBW86T"
WANTED_FILES = ("HAM10000_images_part_1.zip", "HAM10000_images_part_2.zip", "HAM10000_metadata")
COMPLETE_MARKER = ".skinml-download-complete.json"
CHUNK = 1 << 20


class DownloadError(UserError, RuntimeError):
    """The data set could not be downloaded or failed verification."""


@dataclass(frozen=True)
class RemoteFile:
    file_id: int
    name: str  # the name to save under (the original name for ingested tabular files)
    size: int | None
    md5: str | None
    original: bool  # ask for ?format=original (Dataverse ingested the CSV into a .tab)


def default_data_dir() -> Path:
    """$SKINML_DATA_DIR, else ~/.cache/skinml/ham10000."""
    return settings.user_cache("SKINML_DATA_DIR", "ham10000")


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = 60):
    request = urllib.request.Request(url, headers={"User-Agent": "skinml", **(headers or {})})
    return urllib.request.urlopen(request, timeout=timeout)


def list_files(server: str, doi: str) -> list[RemoteFile]:
    """The wanted files of the data set's latest version, from the Dataverse native API."""
    url = f"{server.rstrip('/')}/api/datasets/:persistentId/?persistentId={doi}"
    with _open(url) as response:
        payload = json.load(response)
    files = []
    for entry in payload["data"]["latestVersion"]["files"]:
        data_file = entry["dataFile"]
        original = bool(data_file.get("originalFileName"))
        name = data_file["originalFileName"] if original else data_file["filename"]
        if not any(name.startswith(w) for w in WANTED_FILES):
            continue
        checksum = data_file.get("checksum") or {}
        md5 = checksum.get("value") if checksum.get("type", "MD5").upper() == "MD5" else data_file.get("md5")
        size = data_file.get("originalFileSize") if original else data_file.get("filesize")
        files.append(RemoteFile(int(data_file["id"]), name, size, md5 or data_file.get("md5"), original))
    found = {f.name for f in files}
    missing = [w for w in WANTED_FILES if not any(n.startswith(w) for n in found)]
    if missing:
        raise DownloadError(f"the Dataverse record {doi} at {server} lists no {missing}")
    return files


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(server: str, remote: RemoteFile, dest: Path, attempts: int = 3) -> Path:
    """Download one file to `dest`, resuming the `.part` of an interrupted transfer, then verify it."""
    if dest.exists() and (remote.md5 is None or md5_of(dest) == remote.md5):
        return dest
    url = f"{server.rstrip('/')}/api/access/datafile/{remote.file_id}" + ("?format=original" if remote.original else "")
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, remote)
            size = part.stat().st_size
            if remote.size is None or size == remote.size:
                break
            raise http.client.IncompleteRead(b"", remote.size - size)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
            log.warning("%s: transfer cut off (%s), attempt %d of %d", remote.name, exc, attempt, attempts)
            if attempt == attempts:
                raise DownloadError(
                    f"{remote.name}: transfer cut off {attempts} times ({exc}); run the "
                    "download again to resume from the bytes already saved"
                ) from exc
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        raise DownloadError(
            f"{remote.name}: got {size} bytes, expected {remote.size}; run the download again to resume"
        )
    if remote.md5 is not None and md5_of(part) != remote.md5:
        part.unlink()
        raise DownloadError(
            f"{remote.name}: MD5 checksum mismatch, the file is corrupt and was deleted; run the download again"
        )
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, remote: RemoteFile) -> None:
    """Append the missing bytes of `part` (HTTP Range), or start over when the server ignores the range."""
    have = part.stat().st_size if part.exists() else 0
    if remote.size is not None and have == remote.size:
        return
    if remote.size is not None and have > remote.size:
        part.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with _open(url, headers) as response:
        resumed = response.status == 206
        if have and not resumed:
            log.info("server ignored the Range request for %s: starting over", remote.name)
        with part.open("ab" if resumed else "wb") as handle:
            shutil.copyfileobj(response, handle, CHUNK)


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip into `target`, refusing any member that would land outside it (or is a link)."""
    target = target.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                path = (target / member.filename).resolve()
                if not path.is_relative_to(target):
                    raise DownloadError(
                        f"{archive.name}: member {member.filename!r} would be written outside "
                        f"{target}; refusing to extract"
                    )
                if (member.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DownloadError(f"{archive.name}: member {member.filename!r} is a symbolic link; refusing")
            bad = zf.testzip()
            if bad is not None:
                raise DownloadError(f"{archive.name}: member {bad!r} is corrupt (CRC mismatch)")
            zf.extractall(target)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive.name}: not a valid zip archive ({exc})") from None


def download_ham10000(dest: str | Path | None = None, server: str | None = None, doi: str = HAM10000_DOI) -> Path:
    """Download and extract HAM10000 into `dest` (official layout) and return it; cached after the first call."""
    dest = Path(dest) if dest else default_data_dir()
    server = server or settings.raw("SKINML_DATAVERSE_URL")
    marker = dest / COMPLETE_MARKER
    if marker.exists():
        return dest
    downloads = dest / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    try:
        files = list_files(server, doi)
        for remote in files:
            log.info("downloading %s", remote.name)
            fetch(server, remote, downloads / remote.name)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise DownloadError(
            f"could not download HAM10000 from {server} ({exc}). Offline? Point skinml at a copy you have: "
            "--data-dir DIR (a folder with HAM10000_metadata.csv and the images, or the Kaggle copy with "
            "HAM10000_images_part_1/2)."
        ) from exc
    staging = dest / ".extracting"
    shutil.rmtree(staging, ignore_errors=True)
    for remote in files:
        source = downloads / remote.name
        if remote.name.endswith(".zip"):
            safe_extract(source, staging / "images")
        else:
            staging.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / "HAM10000_metadata.csv")
    for item in staging.iterdir():
        target = dest / item.name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(item, target)
    staging.rmdir()
    marker.write_text(json.dumps({"doi": doi, "server": server, "files": {f.name: f.md5 for f in files}}, indent=2))
    shutil.rmtree(downloads)
    return dest

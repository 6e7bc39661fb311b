"""The HAM10000 downloader against a fake Dataverse server on 127.0.0.1 serving small archives built here."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from skinml.data.dataset import load_dataset
from skinml.data.download import COMPLETE_MARKER, DownloadError, download_ham10000
from skinml.data.synthetic import make_synthetic_ham


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


class FakeDataverse:
    """Serves the native API listing and the access API (with Range support) for a set of files."""

    def __init__(self, files: dict[str, bytes], tabular: str = "HAM10000_metadata.csv"):
        self.files = {i + 100: (name, data) for i, (name, data) in enumerate(files.items())}
        self.tabular = tabular
        self.md5_override: dict[str, str] = {}
        self.cut_first_transfer_of: str | None = None
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path.startswith("/api/datasets/:persistentId/"):
                    body = json.dumps(server.listing()).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                file_id = int(self.path.split("/")[-1].split("?")[0])
                name, data = server.files[file_id]
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if server.cut_first_transfer_of == name:
                    server.cut_first_transfer_of = None
                    self.wfile.write(data[start : start + len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-transfer
                    return
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def listing(self) -> dict:
        entries = []
        for file_id, (name, data) in self.files.items():
            md5 = self.md5_override.get(name, hashlib.md5(data).hexdigest())
            data_file = {
                "id": file_id,
                "filename": name,
                "filesize": len(data),
                "checksum": {"type": "MD5", "value": md5},
            }
            if name == self.tabular:  # Dataverse ingests the CSV into a .tab and keeps the original
                data_file.update(
                    filename="HAM10000_metadata.tab",
                    filesize=len(data) + 7,
                    originalFileName=name,
                    originalFileSize=len(data),
                )
            entries.append({"label": data_file["filename"], "dataFile": data_file})
        entries.append(
            {
                "label": "ISIC2018_Task3_Test_Images.zip",
                "dataFile": {"id": 999, "filename": "ISIC2018_Task3_Test_Images.zip", "filesize": 1},
            }
        )
        return {"status": "OK", "data": {"latestVersion": {"files": entries}}}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archives(tmp_path) -> dict[str, bytes]:
    """The three HAM10000 files, built from a small synthetic data set."""
    source = make_synthetic_ham(tmp_path / "source", n_per_class=2)
    images = sorted((source / "images").iterdir())
    return {
        "HAM10000_images_part_1.zip": zip_of({p.name: p.read_bytes() for p in images[:7]}),
        "HAM10000_images_part_2.zip": zip_of({p.name: p.read_bytes() for p in images[7:]}),
        "HAM10000_metadata.csv": (source / "HAM10000_metadata.csv").read_bytes(),
    }


@pytest.fixture
def dataverse(archives):
    server = FakeDataverse(archives)
    yield server
    server.stop()


def test_download_extracts_official_layout_and_caches(dataverse, tmp_path):
    dest = download_ham10000(tmp_path / "ham", server=dataverse.url)
    frame = load_dataset(dest)
    assert len(frame) == 14
    assert (dest / COMPLETE_MARKER).exists() and not (dest / ".downloads").exists()
    assert any("format=original" in path for path, _ in dataverse.requests)
    assert not any("/999" in path for path, _ in dataverse.requests)  # files we do not need are not fetched
    seen = len(dataverse.requests)
    assert download_ham10000(tmp_path / "ham", server=dataverse.url) == dest
    assert len(dataverse.requests) == seen  # second call: no network work


def test_truncated_transfer_is_resumed_with_range(dataverse, tmp_path):
    dataverse.cut_first_transfer_of = "HAM10000_images_part_2.zip"
    dest = download_ham10000(tmp_path / "ham", server=dataverse.url)
    assert len(load_dataset(dest)) == 14
    ranges = [r for path, r in dataverse.requests if r]
    assert len(ranges) == 1 and ranges[0].startswith("bytes=") and ranges[0] != "bytes=0-"


def test_checksum_mismatch_is_rejected_and_nothing_passes_for_complete(dataverse, tmp_path):
    dataverse.md5_override["HAM10000_images_part_1.zip"] = "0" * 32
    with pytest.raises(DownloadError, match="HAM10000_images_part_1.zip: MD5 checksum mismatch"):
        download_ham10000(tmp_path / "ham", server=dataverse.url)
    assert not (tmp_path / "ham" / COMPLETE_MARKER).exists()
    assert not (tmp_path / "ham" / ".downloads" / "HAM10000_images_part_1.zip.part").exists()
    dataverse.md5_override.clear()  # the next call gets good data and completes
    assert len(load_dataset(download_ham10000(tmp_path / "ham", server=dataverse.url))) == 14


def test_corrupt_archive_is_rejected(archives, tmp_path):
    archives["HAM10000_images_part_2.zip"] = b"PK\x03\x04 this is not really a zip"
    server = FakeDataverse(archives)
    try:
        with pytest.raises(DownloadError, match="HAM10000_images_part_2.zip: not a valid zip archive"):
            download_ham10000(tmp_path / "ham", server=server.url)
    finally:
        server.stop()
    assert not (tmp_path / "ham" / COMPLETE_MARKER).exists()


def test_archive_member_escaping_the_folder_is_refused(archives, tmp_path):
    archives["HAM10000_images_part_1.zip"] = zip_of({"../../escaped.txt": b"gotcha"})
    server = FakeDataverse(archives)
    try:
        with pytest.raises(DownloadError, match="outside"):
            download_ham10000(tmp_path / "deep" / "ham", server=server.url)
    finally:
        server.stop()
    assert not list(tmp_path.rglob("escaped.txt"))


def test_offline_fails_fast_and_says_how_to_use_a_local_copy(tmp_path):
    with pytest.raises(DownloadError, match="--data-dir"):
        download_ham10000(tmp_path / "ham", server="http://127.0.0.1:9")
    assert not (tmp_path / "ham" / COMPLETE_MARKER).exists()

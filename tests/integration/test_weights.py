"""`--weights imagenet`: the real download code, against a local HTTP server standing in for Keras's bucket."""

import functools
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import h5py
import keras
import numpy as np
import pytest

from skinml.model import weights as skinml_weights
from skinml.model.network import build_feature_extractor
from skinml.model.weights import WeightsError, imagenet_weights_filename, resolve_weights


@pytest.fixture
def weights_server(tmp_path):
    """Serves a no-top MobileNetV2 weights file in Keras's legacy .h5 layout, as the official files are."""
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    served = tmp_path / "served"
    served.mkdir()
    backbone = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.5)
    with h5py.File(served / imagenet_weights_filename(0.5), "w") as handle:
        save_weights_to_hdf5_group(handle, backbone)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served, backbone
    httpd.shutdown()
    httpd.server_close()


def test_imagenet_weights_are_downloaded_verified_and_cached(weights_server, tmp_path, monkeypatch):
    url, served, backbone = weights_server
    fname = imagenet_weights_filename(0.5)
    monkeypatch.setenv("SKINML_WEIGHTS_URL", url)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setitem(
        skinml_weights.KNOWN_WEIGHT_HASHES, fname, hashlib.sha256((served / fname).read_bytes()).hexdigest()
    )
    path = resolve_weights("imagenet", alpha=0.5)
    assert path.startswith(str(tmp_path / "keras" / "models"))
    extractor = build_feature_extractor(32, "imagenet", alpha=0.5)
    loaded = extractor.get_layer(backbone.name)
    for a, b in zip(loaded.get_weights(), backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    (served / fname).unlink()  # the cached copy is used: no download needed any more
    assert resolve_weights("imagenet", alpha=0.5) == path


def test_download_with_wrong_checksum_is_refused(weights_server, tmp_path, monkeypatch):
    url, _, _ = weights_server
    monkeypatch.setenv("SKINML_WEIGHTS_URL", url)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setitem(skinml_weights.KNOWN_WEIGHT_HASHES, imagenet_weights_filename(0.5), "0" * 64)
    with pytest.raises(WeightsError, match="could not download"):
        resolve_weights("imagenet", alpha=0.5)


def test_offline_imagenet_says_how_to_pass_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINML_WEIGHTS_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsError, match="--weights PATH"):
        resolve_weights("imagenet")


def test_none_and_missing_path():
    assert resolve_weights("none") is None
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights("/nope/weights.h5")


def test_every_bad_weights_file_is_one_named_error(tmp_path):
    from skinml.model.network import build_backbone

    with pytest.raises(WeightsError, match="is a folder"):
        resolve_weights(str(tmp_path))
    text = tmp_path / "notes.h5"
    text.write_text("not an HDF5 file")
    with pytest.raises(WeightsError, match=f"weights file {text} is not MobileNetV2"):
        build_backbone(32, str(text))
    other = tmp_path / "alpha035.weights.h5"  # a real weights file of another width
    keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35).save_weights(
        other
    )
    with pytest.raises(WeightsError, match=r"is not MobileNetV2 \(alpha 1.0"):
        build_backbone(32, str(other))

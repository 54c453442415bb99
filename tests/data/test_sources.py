"""Tests for tfsr.data.sources: folders, bad files, the embedded photos, DIV2K and flag specs."""

import os
import socket

import numpy as np
import pytest

from tfsr.data import sources
from tfsr.data.io import ImageReadError, read_image, write_image
from tfsr.data.sources import (
    ImageSource,
    SourceUnavailableError,
    div2k,
    embedded_photos,
    image_folder,
    source_from_spec,
)


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    write_image(tmp_path / "b.png", _rgb(6, 5, seed=1))
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "sub" / "a.png", _rgb(4, 7, seed=2))
    write_image(tmp_path / "c.png", _rgb(3, 3, seed=3)[..., 0])  # grey
    rgba = np.concatenate([_rgb(5, 5, seed=4), np.full((5, 5, 1), 7, np.uint8)], axis=-1)
    write_image(tmp_path / "d.png", rgba)
    return tmp_path


def test_image_folder_lists_and_decodes(folder):
    source = image_folder(folder)
    assert source.name == str(folder)
    assert [os.path.relpath(p, folder) for p in source.paths] == [
        "b.png",
        "c.png",
        "d.png",
        os.path.join("sub", "a.png"),
    ]
    assert len(source) == 4
    images = list(source)
    np.testing.assert_array_equal(images[0], _rgb(6, 5, seed=1))
    np.testing.assert_array_equal(images[1], np.repeat(_rgb(3, 3, seed=3)[..., :1], 3, axis=-1))
    np.testing.assert_array_equal(images[2], _rgb(5, 5, seed=4))  # alpha dropped
    np.testing.assert_array_equal(source.load(3), _rgb(4, 7, seed=2))
    assert source.sizes() == {0: (6, 5), 1: (3, 3), 2: (5, 5), 3: (4, 7)}


def test_decode_keeps_order_with_threads(folder):
    source = image_folder(folder)
    decoded = list(source.decode([3, 0, 2], num_threads=3))
    assert [i for i, _ in decoded] == [3, 0, 2]
    for index, image in decoded:
        np.testing.assert_array_equal(image, read_image(source.paths[index]))


def test_bad_file_raises_or_is_skipped_with_a_warning(folder):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageReadError, match="broken.png"):
        list(image_folder(folder))
    with pytest.raises(ImageReadError, match="broken.png"):
        image_folder(folder).sizes()
    lenient = image_folder(folder, skip_bad=True)
    with pytest.warns(UserWarning, match=r"skipping 1 undecodable file.*broken.png"):
        images = list(lenient)
    assert len(images) == 4
    with pytest.warns(UserWarning, match=r"skipping 1 unreadable file.*broken.png"):
        assert sorted(lenient.sizes()) == [0, 2, 3, 4]


def test_truncated_file_with_valid_header_is_found_when_decoding(folder):
    write_image(folder / "big.png", _rgb(64, 64, seed=5))
    data = (folder / "big.png").read_bytes()
    (folder / "big.png").write_bytes(data[: len(data) // 2])
    source = image_folder(folder, skip_bad=True)
    assert os.path.basename(source.paths[1]) == "big.png"
    assert source.sizes()[1] == (64, 64)  # the header is intact
    with pytest.warns(UserWarning, match="big.png"):
        assert [i for i, _ in source.decode()] == [0, 2, 3, 4]


def test_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match=f"no image files.*{tmp_path.name}"):
        image_folder(tmp_path)


def test_embedded_photos_are_natural_colour_photographs():
    source = embedded_photos()
    assert source.name == "embedded"
    assert len(source) == len(sources.EMBEDDED_PHOTOS) == 6
    sizes = source.sizes()
    assert sizes[0] == (512, 512)  # astronaut
    assert sizes[1] == (300, 451)  # chelsea
    assert sum(h * w for h, w in sizes.values()) == 1_651_724
    for image in source:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        # Colour photographs: the channels differ, and the values span most of 0..255.
        assert np.abs(image[..., 0].astype(int) - image[..., 2]).mean() > 5
        assert image.max() - image.min() > 200


def test_source_from_spec(folder):
    assert source_from_spec("embedded").name == "embedded"
    from_folder = source_from_spec(str(folder))
    assert from_folder.paths == image_folder(folder).paths
    assert source_from_spec(str(folder), skip_bad=True).skip_bad
    with pytest.raises(ValueError, match=r"'nope'.*'embedded', 'div2k'.*folder"):
        source_from_spec("nope")
    with pytest.raises(ValueError, match=r"unknown DIV2K split 'test'.*train"):
        source_from_spec("div2k:test")


def test_image_source_paths_become_strings(tmp_path):
    source = ImageSource("x", [tmp_path / "a.png"])
    assert source.paths == (str(tmp_path / "a.png"),)


# ------------------------------------------------------------------------------------------ DIV2K


def _offline(*args, **kwargs):
    raise socket.gaierror(-2, "Name or service not known")


def test_div2k_offline_fails_fast_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _offline)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SourceUnavailableError, match=r"DIV2K_train_HR\.zip.*offline"):
        div2k("train", data_dir=tmp_path)


def test_div2k_download_failure_is_reported(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [])

    def refuse(self, url):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", refuse)
    with pytest.raises(SourceUnavailableError, match=r"DIV2K \(validation\).*connection refused"):
        div2k("validation", data_dir=tmp_path)


def test_div2k_real_path_on_a_fake_download(tmp_path, monkeypatch):
    """The real code path, with tfds' download patched to 'extract' a tiny DIV2K-layout folder."""
    import tensorflow_datasets as tfds

    calls = []

    def fake_download_and_extract(self, url):
        calls.append(url)
        extracted = tmp_path / "downloads" / "extracted" / "ZIP.fake_DIV2K_train_HR.zip"
        (extracted / "DIV2K_train_HR").mkdir(parents=True)
        for k in (1, 2, 3):
            write_image(extracted / "DIV2K_train_HR" / f"000{k}.png", _rgb(8, 9, seed=k))
        return extracted

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [])
    monkeypatch.setattr(
        tfds.download.DownloadManager, "download_and_extract", fake_download_and_extract
    )
    source = div2k("train", data_dir=tmp_path)
    assert calls == ["https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip"]
    assert source.name == "div2k-train"
    assert [os.path.basename(p) for p in source.paths] == ["0001.png", "0002.png", "0003.png"]
    np.testing.assert_array_equal(source.load(1), _rgb(8, 9, seed=2))

    # A second call reuses the extracted folder: no network, no download.
    monkeypatch.setattr(socket, "getaddrinfo", _offline)
    again = div2k("train", data_dir=tmp_path)
    assert again.paths == source.paths and len(calls) == 1

"""The IDX reader behind --data fashion: exact round trips, and damaged files as one-line errors."""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from vqexport.errors import DataError
from vqexport.evaluate import datasets
from vqexport.evaluate.idx import read_idx, read_images_labels


def idx_bytes(a: np.ndarray, code: int = 0x08) -> bytes:
    big_endian = a.astype(a.dtype.newbyteorder(">")).tobytes()
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + big_endian


def write(path: Path, blob: bytes, gz: bool = True) -> Path:
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.float32, 0x0D)])
def test_round_trip(tmp_path, rng, gz, dtype, code):
    a = (rng.normal(size=(5, 3, 4)) * 50).astype(dtype)
    got = read_idx(write(tmp_path / "a.idx", idx_bytes(a, code), gz))
    assert got.dtype == np.dtype(dtype) and got.shape == a.shape
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("mutate,message", [
    (lambda b: b"\x01" + b[1:], "bad magic"),
    (lambda b: b[:2] + b"\x07" + b[3:], "type code"),
    (lambda b: b[:3] + b"\x09" + b[4:], "rank"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\0", "bytes after"),
    (lambda b: b[:4] + struct.pack(">I", 0xFFFFFFFF) + b[8:], "declares"),
    (lambda b: b"", "bad magic"),
])
def test_damaged_files_are_one_line_errors(tmp_path, mutate, message):
    good = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    path = write(tmp_path / "bad.gz", mutate(good))
    with pytest.raises(DataError, match=message) as e:
        read_idx(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_corrupt_gzip_stream(tmp_path):
    blob = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8).reshape(2, 10, 10))))
    blob[len(blob) // 2] ^= 0xFF
    path = tmp_path / "c.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=str(path)):
        read_idx(path)


def test_images_and_labels_checked_against_each_other(tmp_path):
    x = write(tmp_path / "x.gz", idx_bytes(np.zeros((3, 4, 4), np.uint8)))
    y3 = write(tmp_path / "y3.gz", idx_bytes(np.array([0, 1, 2], np.uint8)))
    y2 = write(tmp_path / "y2.gz", idx_bytes(np.array([0, 1], np.uint8)))
    ybig = write(tmp_path / "yb.gz", idx_bytes(np.array([0, 1, 10], np.uint8)))
    assert read_images_labels(x, y3, classes=10)[0].shape == (3, 4, 4)
    with pytest.raises(DataError, match="3 images"):
        read_images_labels(x, y2, classes=10)
    with pytest.raises(DataError, match="label 10"):
        read_images_labels(x, ybig, classes=10)
    with pytest.raises(DataError, match="expected uint8 images"):
        read_images_labels(y3, y3, classes=10)


def test_fashion_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("VQEXPORT_FASHION_DIR", str(tmp_path))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        datasets.load_dataset("fashion")


def test_fashion_from_a_folder(tmp_path, monkeypatch):
    x = (np.arange(2 * 28 * 28) % 256).astype(np.uint8).reshape(2, 28, 28)
    for images, labels in datasets.FASHION_FILES.values():
        write(tmp_path / images, idx_bytes(x))
        write(tmp_path / labels, idx_bytes(np.array([3, 9], np.uint8)))
    monkeypatch.setenv("VQEXPORT_FASHION_DIR", str(tmp_path))
    xs, ys = datasets.load_dataset("fashion")
    assert xs.shape == (2, 1, 28, 28) and xs.dtype == np.float32 and ys.tolist() == [3, 9]
    np.testing.assert_allclose(xs[:, 0] * 255, x, atol=1e-4)


@pytest.mark.slow  # reads Debian's Fashion-MNIST, which only make test installs
def test_real_fashion_mnist_split():
    # make test installs dataset-fashion-mnist, so this never skips
    xt, yt = datasets.fashion("test")
    assert xt.shape == (10000, 1, 28, 28) and yt.shape == (10000,)
    assert 0.0 <= xt.min() and xt.max() <= 1.0
    assert np.bincount(yt).tolist() == [1000] * 10  # the official test split is balanced

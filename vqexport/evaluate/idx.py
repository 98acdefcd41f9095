"""A checked reader for IDX files (the MNIST / Fashion-MNIST container), plain or gzipped.

IDX: two zero bytes, a type code, the number of dimensions, then each dimension as a
big-endian uint32, then the data, big-endian, row-major. Every size is checked against the
header before anything is allocated, and the file must hold exactly the data it declares:
a truncated or padded file is an error, not a silently shorter data set.
"""
from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

# IDX type codes and their big-endian numpy types.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 1 << 30  # Fashion-MNIST's largest file is 47 MB; nothing legitimate is near this
MAX_RANK = 4


def read_idx(path, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """The array in an IDX file (.gz or not), in native byte order."""
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0":
                raise DataError(f"{path}: not an IDX file (bad magic number)")
            code, rank = head[2], head[3]
            if code not in IDX_TYPES:
                raise DataError(f"{path}: unknown IDX type code 0x{code:02x}")
            if not 1 <= rank <= MAX_RANK:
                raise DataError(f"{path}: IDX rank {rank} is outside 1..{MAX_RANK}")
            dims_raw = f.read(4 * rank)
            if len(dims_raw) < 4 * rank:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{rank}I", dims_raw)
            dtype = np.dtype(IDX_TYPES[code])
            size = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
            if size > max_bytes:
                raise DataError(f"{path}: declares {size} bytes of data, more than the {max_bytes} allowed")
            data = f.read(size)
            if len(data) < size:
                raise DataError(f"{path}: truncated: {len(data)} of the {size} data bytes its header declares")
            if f.read(1):
                raise DataError(f"{path}: has bytes after the {size} data bytes its header declares")
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise DataError(f"{path}: no such file") from None
        raise DataError(f"{path}: not a readable IDX file ({e})") from None
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _open(path: Path):
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_images_labels(images_path, labels_path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W) and their labels, checked against each other."""
    x, y = read_idx(images_path), read_idx(labels_path)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images (N, H, W), got {x.dtype} {x.shape}")
    if y.ndim != 1 or y.dtype != np.uint8:
        raise DataError(f"{labels_path}: expected uint8 labels (N,), got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{images_path}: {len(x)} images, but {labels_path} has {len(y)} labels")
    if len(y) and int(y.max()) >= classes:
        raise DataError(f"{labels_path}: label {int(y.max())} is outside 0..{classes - 1}")
    return x, y

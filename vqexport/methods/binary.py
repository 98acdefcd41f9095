"""Binarization: the sign of each weight times one scale per layer.

The scale is alpha = mean(|W|), the value that minimises ||W - alpha * sign(W)||_F.
It is stored as the 2-entry codebook [-alpha, +alpha], so the decode is the same
Gather as k-means, with 1-bit indices (1 means >= 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitpack import pack_stream
from ..ir import packed_bytes_section
from .base import MethodConfig, codebook_tensor, flat_gather, need
from .kmeans1d import CHUNK

NAME = "binary"
TABLE = ("k", "bits")  # the tensor-table fields it uses (docs/FORMAT.md); the others are 0


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    SEEDED = False
    codebook_dtype: str = "float32"


def check(shape, q) -> None:
    need(len(shape) == 2, f"binary needs a 2-D weight, got shape {tuple(shape)}")


def fit(w: np.ndarray, q: Config, seed: int):
    flat = w.ravel()
    chunks = range(0, flat.size, CHUNK)
    alpha = float(sum(np.abs(flat[a:a + CHUNK], dtype=np.float64).sum() for a in chunks) / flat.size)
    packed = pack_stream(((flat[a:a + CHUNK] >= 0) for a in range(0, flat.size, CHUNK)), 1)
    return codebook_tensor(NAME, w.shape, np.array([-alpha, alpha]), packed_bytes_section(packed, (flat.size,), 1),
                           1, q, k=2)


def decode(t, rows=None) -> np.ndarray:
    return flat_gather(t, rows)


def layout(t) -> dict:
    if t.k != 2 or t.bits != 1:
        raise ValueError("binary needs k=2 and 1-bit indices")
    return {"codebook": (2,), "indices": (t.shape[0] * t.shape[1],)}

"""Binarization: the sign of each weight times one scale per tensor (or per group of rows).

The scale is alpha = mean(|W|), the value that minimises ||W - alpha * sign(W)||_F.
It is stored as the 2-entry codebook [-alpha, +alpha], so the decode is the same
Gather as k-means, with 1-bit indices (1 means >= 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitpack import pack_stream
from ..ir import packed_bytes_section
from .base import MethodConfig, check_groups, codebook_tensor, flat_gather, matrix
from .kmeans import _grouped
from .kmeans1d import CHUNK

NAME = "binary"
TABLE = ("k", "bits")  # the tensor-table fields it uses (docs/FORMAT.md); the others are 0
CODEBOOK_NDIM = 1  # rank of one codebook section; grouped ones have one more (the groups)


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    SEEDED = False
    group_size: int = 0  # rows (output channels) per scale; 0: one scale for the tensor
    codebook_dtype: str = "float32"


def check(shape, q) -> None:
    matrix(shape)
    check_groups(shape, q)


def fit(w: np.ndarray, q: Config, seed: int):
    g = check_groups(w.shape, q)
    blocks = [b.ravel() for b in np.split(w.reshape(w.shape[0], -1), g)]
    alphas = [float(sum(np.abs(b[a:a + CHUNK], dtype=np.float64).sum() for a in range(0, b.size, CHUNK)) / b.size)
              for b in blocks]
    packed = pack_stream(((b[a:a + CHUNK] >= 0) for b in blocks for a in range(0, b.size, CHUNK)), 1)
    codebook = np.array([[-a, a] for a in alphas]) if g > 1 else np.array([-alphas[0], alphas[0]])
    return codebook_tensor(NAME, w.shape, codebook, packed_bytes_section(packed, (w.size,), 1), 1, q, k=2, groups=g)


def decode(t, rows=None) -> np.ndarray:
    return flat_gather(t, rows)


def layout(t) -> dict:
    if t.k != 2 or t.bits != 1:
        raise ValueError("binary needs k=2 and 1-bit indices")
    m, n = t.matrix
    return {"codebook": _grouped(t, (2,)), "indices": (m * n,)}

"""Residual quantization: t stages of k-means on the rows, each on what the last left over."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitpack import bits_for
from .base import MethodConfig, codebook_tensor, matrix, need
from .lloyd import lloyd

NAME = "rq"
TABLE = ("k", "stages", "bits")
CODEBOOK_NDIM = 3  # rank of one codebook section; grouped ones have one more (the groups)
ROW_BLOCK = 256


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    k: int = 16
    stages: int = 2
    codebook_dtype: str = "float32"


def check(shape, q) -> None:
    m, _ = matrix(shape)
    need(q.k <= m, f"k={q.k} is larger than the {m} rows to cluster")


def fit(w: np.ndarray, q: Config, seed: int):
    residual = np.array(w, dtype=np.float32).reshape(w.shape[0], -1)
    codebooks, indices = [], []
    for stage in range(q.stages):
        cb, idx = lloyd(residual[None], q.k, seed + stage)
        codebooks.append(cb[0])
        indices.append(idx[0])
        # The residual is taken against the codebook as stored (float16 rounds it).
        stored = cb[0].astype(np.float16).astype(np.float32) if q.codebook_dtype == "float16" else cb[0]
        # In row blocks: stored[idx] whole would be one more copy of the layer.
        for r in range(0, len(residual), ROW_BLOCK):
            residual[r:r + ROW_BLOCK] -= stored[idx[0][r:r + ROW_BLOCK]]
    return codebook_tensor(NAME, w.shape, np.stack(codebooks), np.stack(indices), bits_for(q.k), q, stages=q.stages)


def decode(t, rows=None) -> np.ndarray:
    cb, idx = t.codebook(), t.indices()
    if rows is not None:
        idx = idx[:, rows]
    out = np.zeros((idx.shape[1], t.matrix[1]), dtype=np.float32)
    for stage in range(t.stages):
        out += cb[stage][idx[stage]]
    return out


def layout(t) -> dict:
    if t.stages < 1:
        raise ValueError("rq with 0 stages")
    m, n = t.matrix
    return {"codebook": (t.stages, t.k, n), "indices": (t.stages, m)}

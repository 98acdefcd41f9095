"""Pieces the quantizers share: codebook rounding and the section builders."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..ir import CompressedTensor, Section, dense_section, packed_section


def store_codebook(cb: np.ndarray, dtype: str) -> Section:
    """The codebook as stored; float16 storage rounds it, and the decode uses the rounded one."""
    return dense_section("codebook", np.ascontiguousarray(cb, dtype=np.float16 if dtype == "float16" else np.float32))


def codebook_tensor(method, shape, codebook, indices, bits, q, **layout) -> CompressedTensor:
    return CompressedTensor(
        name="", method=method, shape=tuple(shape), bits=bits, k=layout.pop("k", q.k),
        sections={"codebook": store_codebook(codebook, q.codebook_dtype), "indices": packed_section(indices, bits)},
        **layout,
    )


def need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)

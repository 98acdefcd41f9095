"""Pieces the quantizers share: codebook rounding and the section builders."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..ir import CompressedTensor, Section, dense_section, packed_section


def store_codebook(cb: np.ndarray, dtype: str) -> Section:
    """The codebook as stored; float16 storage rounds it, and the decode uses the rounded one."""
    return dense_section("codebook", np.ascontiguousarray(cb, dtype=np.float16 if dtype == "float16" else np.float32))


def codebook_tensor(method, shape, codebook, indices, bits, q, **layout) -> CompressedTensor:
    """indices: an index array, or a Section already packed (see lloyd.assign1d_packed)."""
    section = indices if isinstance(indices, Section) else packed_section(indices, bits)
    return CompressedTensor(
        name="", method=method, shape=tuple(shape), bits=bits, k=layout.pop("k", q.k),
        sections={"codebook": store_codebook(codebook, q.codebook_dtype), "indices": section},
        **layout,
    )


def flat_gather(t, rows) -> np.ndarray:
    """Scalar decode shared by binary and kmeans: W.flat[i] = codebook[I[i]], for a row block."""
    m, n = t.shape
    rows = rows or slice(0, m)
    start, stop = rows.start or 0, min(m, rows.stop if rows.stop is not None else m)
    return t.codebook()[t.flat_indices(start * n, (stop - start) * n)].reshape(stop - start, n)




def need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)

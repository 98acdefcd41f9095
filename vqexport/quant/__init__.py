"""The quantizers of the paper behind one small interface, and their registry.

Each method module defines:
    check(shape, q)            raise ConfigError if q does not fit a weight of this shape
    fit(w, q, seed, progress)  -> CompressedTensor (name left empty)
    decode(t, rows=None)       -> float32 W[rows] (all of W by default): THE reference decode
    layout(t)                  -> {role: shape} of the sections the decode reads
"""
from __future__ import annotations

from types import ModuleType

from . import binary, kmeans, pq, rq, svd

_REGISTRY: dict[str, ModuleType] = {m.NAME: m for m in (binary, kmeans, pq, rq, svd)}


def get_quantizer(method: str) -> ModuleType:
    try:
        return _REGISTRY[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}") from None


def methods() -> list[str]:
    return list(_REGISTRY)

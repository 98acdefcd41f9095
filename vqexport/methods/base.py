"""What every method module shares: the config base class, the setting checks, the section builders.

A method's Config holds only the settings its method reads, so a setting that the method does
not read cannot be given at all ("k has no effect with method svd").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import ConfigError
from ..ir import CompressedTensor, Section, dense_section, matrix_shape, packed_section

CODEBOOK_DTYPES = ("float32", "float16")


@dataclass(frozen=True, repr=False)
class MethodConfig:
    """How one tensor is compressed. Subclasses set NAME and SEEDED and declare their own fields."""

    NAME: ClassVar[str] = ""
    SEEDED: ClassVar[bool] = True  # whether fit draws random numbers (reads CompressConfig.seed)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_setting(f.name, getattr(self, f.name))

    @property
    def method(self) -> str:
        return self.NAME

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def fields(self) -> dict:
        """The settings, in declaration order, without the method name."""
        return {name: getattr(self, name) for name in self.settings()}

    def replace(self, **changes) -> MethodConfig:
        unknown = [key for key in changes if key not in self.settings()]
        if unknown:
            raise ConfigError(f"{unknown[0]} has no effect with method {self.NAME}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {"method": self.NAME, **self.fields()}

    def __repr__(self) -> str:  # as it is built: QuantConfig(method='pq', k=16, d=4, ...)
        return "QuantConfig(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"


def check_setting(name: str, value) -> None:
    """The range of each setting, wherever a method declares it (one rule per name)."""
    if name == "codebook_dtype":
        if value not in CODEBOOK_DTYPES:
            raise ConfigError(f"codebook_dtype must be float32 or float16, got {value!r}")
        return
    if name == "rows":
        if not isinstance(value, bool):
            raise ConfigError(f"rows must be true or false, got {value!r}")
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    low, high = RANGES[name]
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}" if high < INF
                          else f"{name} must be at least {low}, got {value}")


INF = float("inf")
RANGES = {"k": (2, 65536), "d": (1, INF), "stages": (1, 255), "rank": (1, INF), "group_size": (0, INF)}


def store_codebook(cb: np.ndarray, dtype: str) -> Section:
    """The codebook as stored; float16 storage rounds it, and the decode uses the rounded one."""
    return dense_section("codebook", np.ascontiguousarray(cb, dtype=np.float16 if dtype == "float16" else np.float32))


def codebook_tensor(method, shape, codebook, indices, bits, q, **layout) -> CompressedTensor:
    """indices: an index array, or a Section already packed (see kmeans1d.assign1d_packed)."""
    section = indices if isinstance(indices, Section) else packed_section(indices, bits)
    return CompressedTensor(
        name="", method=method, shape=tuple(shape), bits=bits, k=layout.pop("k", getattr(q, "k", 0)),
        sections={"codebook": store_codebook(codebook, q.codebook_dtype), "indices": section},
        **layout,
    )


def flat_gather(t, rows) -> np.ndarray:
    """Scalar decode shared by binary and kmeans: W.flat[i] = codebook[g(i)][I[i]], for a row block,
    where g(i) is the group of i's row (one codebook, g = 0, unless --group-size)."""
    m, n = t.matrix
    rows = rows or slice(0, m)
    start, stop = rows.start or 0, min(m, rows.stop if rows.stop is not None else m)
    idx = t.flat_indices(start * n, (stop - start) * n).reshape(stop - start, n)
    cb = t.codebook()
    if t.groups == 1:
        return cb[idx]
    return cb[row_groups(t, start, stop)[:, None], idx]


def row_groups(t, start: int, stop: int) -> np.ndarray:
    """The codebook group of each row start .. stop-1."""
    return np.arange(start, stop) // (t.matrix[0] // t.groups)


def check_groups(shape, q) -> int:
    """The number of codebooks that --group-size gives a weight of this shape (1 without it)."""
    m, _ = matrix_shape(shape)
    g = getattr(q, "group_size", 0)
    if not g:
        return 1
    need(m % g == 0, f"--group-size {g} does not divide the {m} output channels")
    return m // g


def matrix(shape) -> tuple[int, int]:
    need(len(shape) >= 2, f"a weight needs at least 2 dimensions, got shape {tuple(shape)}")
    return matrix_shape(shape)


def need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)

"""The one intermediate representation: per tensor, its codebooks, packed indices and layout.

Methods produce it, the .vqm / ONNX / TFLite writers read it, and nothing re-derives it.
Field names follow docs/FORMAT.md one to one. Data and sizes only: the decode of each method is
in vqexport/methods, the way back to torch in vqexport/torch_bridge.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import bitpack

ROLES = ("raw", "codebook", "indices", "factor_a", "factor_b")
DTYPES = ("float32", "float16", "int64", "int32", "uint8", "packed", "float64", "bool")
ITEMSIZE = {"float32": 4, "float16": 2, "int64": 8, "int32": 4, "uint8": 1, "float64": 8, "bool": 1}


@dataclass
class Section:
    """One payload: a dense array, or (dtype 'packed') b-bit indices packed into bytes."""

    role: str
    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray  # packed: the uint8 bytes; otherwise an array of `dtype` and `shape`
    bits: int = 0
    coded_nbytes: int = 0  # packed indices a .vqm stored Huffman-coded: that payload's size (0: plain)

    @property
    def count(self) -> int:
        return math.prod(int(v) for v in self.shape)  # Python ints: a declared shape's product must not wrap

    @property
    def nbytes(self) -> int:
        if self.dtype == "packed":
            return bitpack.packed_nbytes(self.count, self.bits)
        return self.count * ITEMSIZE[self.dtype]

    @property
    def ideal_bits(self) -> int:
        return self.count * self.bits if self.dtype == "packed" else self.nbytes * 8

    def tobytes(self) -> bytes:
        if self.dtype == "packed":
            return self.data.tobytes()
        return np.ascontiguousarray(self.data).astype(self.data.dtype.newbyteorder("<"), copy=False).tobytes()

    def unpacked(self) -> np.ndarray:
        return bitpack.unpack(self.data, self.count, self.bits).reshape(self.shape)


def dense_section(role: str, array: np.ndarray) -> Section:
    dtype = "bool" if array.dtype == np.bool_ else str(array.dtype)
    if dtype not in ITEMSIZE:
        raise ValueError(f"unsupported dtype {array.dtype}")
    return Section(role, dtype, tuple(array.shape), np.ascontiguousarray(array))


def packed_section(indices: np.ndarray, bits: int) -> Section:
    return packed_bytes_section(bitpack.pack(indices, bits), tuple(indices.shape), bits)


def packed_bytes_section(data: bytes, shape: tuple[int, ...], bits: int) -> Section:
    """Indices that were packed as they were computed (see lloyd.assign1d_packed)."""
    return Section("indices", "packed", tuple(shape), np.frombuffer(data, dtype=np.uint8), bits)


def matrix_shape(shape) -> tuple[int, int]:
    """How every method sees an N-D weight: one row per output channel (shape[0]), the rest flattened.
    A conv's filters are its rows: Cout x (Cin/groups * kh * kw), as the paper's m x n."""
    return int(shape[0]), math.prod(int(v) for v in shape[1:])


@dataclass
class CompressedTensor:
    """A tensor of the model: raw, or a compressed weight, quantized as its m x n matrix (matrix_shape)."""

    name: str
    method: str  # "raw", or a method of vqexport.methods.registry
    shape: tuple[int, ...]
    sections: dict[str, Section]
    k: int = 0
    d: int = 0
    rows: bool = False
    stages: int = 0
    rank: int = 0
    bits: int = 0
    groups: int = 1  # codebooks along the rows, each for m / groups consecutive rows (--group-size)

    @property
    def matrix(self) -> tuple[int, int]:
        return matrix_shape(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(int(v) for v in self.shape)

    @property
    def ideal_bits(self) -> int:
        return sum(s.ideal_bits for s in self.sections.values())

    @property
    def compression(self) -> float:
        """32-bit dense bits over stored bits, as the paper counts it."""
        return 32.0 * self.numel / self.ideal_bits

    @property
    def bits_per_weight(self) -> float:
        return self.ideal_bits / self.numel

    def codebook(self) -> np.ndarray:
        return self.sections["codebook"].data.astype(np.float32)

    def indices(self) -> np.ndarray:
        return self.sections["indices"].unpacked()

    def flat_indices(self, start: int, count: int) -> np.ndarray:
        """Indices start .. start+count-1 of the flat index stream, unpacking only those."""
        sec = self.sections["indices"]
        return bitpack.unpack_range(sec.data, start, count, sec.bits)

    def row_blocks(self, elements: int = 1 << 22):
        """Row slices of about `elements` weights each, covering the whole tensor."""
        m = self.shape[0]
        step = max(1, elements // max(1, self.numel // max(m, 1)))
        return [slice(a, min(m, a + step)) for a in range(0, m, step)]


@dataclass
class CompressedModel:
    """Every tensor of a model, in state_dict order, plus the metadata written into the .vqm."""

    tensors: list[CompressedTensor]
    metadata: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> CompressedTensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def compressed(self) -> list[CompressedTensor]:
        return [t for t in self.tensors if t.method != "raw"]

    def ideal_bits(self) -> int:
        return sum(t.ideal_bits for t in self.tensors)

    def dense_bits(self) -> int:
        """Bits of the whole model stored densely at its own dtypes."""
        return sum(t.numel * ITEMSIZE[_dense_dtype(t)] * 8 for t in self.tensors)

    def summary(self) -> dict:
        """Sizes and rates of the compressed layers and of the whole model."""
        comp = self.compressed
        # Dense layers left raw (see metadata "skipped") count at their full size.
        dense = comp + [self[name] for name in self.metadata.get("skipped", {})]
        layer_dense = sum(32 * t.numel for t in dense)
        layer_ideal = sum(t.ideal_bits for t in dense)
        return {
            "layers_compressed": len(comp),
            "dense_layer_bytes": layer_dense // 8,
            "compressed_layer_bytes": layer_ideal / 8,
            "layer_compression": layer_dense / layer_ideal if layer_ideal else 1.0,
            "model_dense_bytes": self.dense_bits() // 8,
            "model_ideal_bytes": self.ideal_bits() / 8,
            "model_compression": self.dense_bits() / self.ideal_bits() if self.ideal_bits() else 1.0,  # no weights
        }

    @property
    def tied(self) -> dict[str, str]:
        """{alias: stored name}: a tensor the model uses under two names (tied weights), stored once."""
        return self.metadata.get("tied") or {}


def _dense_dtype(t: CompressedTensor) -> str:
    return t.sections["raw"].dtype if t.method == "raw" else "float32"

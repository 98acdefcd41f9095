"""The ONNX decode chain of each method: nodes that compute a weight from its payload.

One entry per method in CHAINS (the table a new method adds itself to); each chain reads the
IR sections and writes the weight, or its transpose, under the initializer's name.

Unpacking b-bit indices (docs/FORMAT.md, "Bit packing"). When b divides 8 (1, 2, 4, 8 bits)
each byte holds 8/b whole values: a [256, 8/b] table of the values in every possible byte
(computed in-graph with Range, Div and Mod) is gathered by the stored bytes; for kmeans and
binary the table holds the codebook entries themselves, so the weight is two Gathers and a
Reshape. Other widths: 8 values fill exactly b bytes, so the bytes are viewed as [G, b],
one row per 8 values. Value j of a row is floor(word_j / 2^s_j) mod 2^b, where word_j is
the (up to 3) bytes holding it read as a little-endian integer and s_j its bit offset in the
first of them. That is linear in the bytes, so one MatMul by a constant [b, 8] matrix gives
word_j / 2^s_j for all j; every partial sum is a multiple of 2^-s_j below 2^(24 - s_j), so
float32 holds it exactly.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ..errors import VqexportError
from ..ir import CompressedTensor


class _Builder:
    """Collects nodes and small constant initializers under one name prefix."""

    def __init__(self, prefix: str, shared: dict | None = None):
        self.prefix = prefix
        self.nodes, self.inits = [], []
        self._n = 0
        self.shared = {} if shared is None else shared  # outputs every layer's decode may reuse

    def name(self, what: str) -> str:
        self._n += 1
        return f"{self.prefix}/{what}_{self._n}"

    def const(self, what: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = f"{self.prefix}/{what}"
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))  # keeps 0-d scalars 0-d
        return name

    def op(self, op_type: str, inputs, output: str | None = None, **attrs) -> str:
        from onnx import helper

        out = output or self.name(op_type.lower())
        # No node name (ONNX makes it optional): on a network of hundreds of compressed layers the
        # names alone would be about 1 % of the file.
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def shape(self, what: str, dims) -> str:
        return self.const(what, np.asarray(dims, dtype=np.int64))


def unpack_matrix(bits: int) -> np.ndarray:
    """[bits, 8] float32: (row of b bytes, as float) @ M = value_j * 2^0 + lower-bit fraction + higher bits."""
    m = np.zeros((bits, 8), dtype=np.float32)
    for j in range(8):
        first, shift = divmod(j * bits, 8)
        last = (j * bits + bits - 1) // 8
        for byte in range(first, last + 1):
            m[byte, j] = np.float32(256.0 ** (byte - first) / 2.0 ** shift)
    return m


def _unpack(b: _Builder, t: CompressedTensor, shape=None) -> str:
    """int32 indices, shaped `shape` (default: the section's logical shape), from the packed bytes."""
    sec = t.sections["indices"]
    bits, count = sec.bits, sec.count
    shape = list(sec.shape) if shape is None else list(shape)
    if 8 % bits == 0:  # whole values per byte: one lookup per byte
        x = b.op("Gather", [_byte_table(b, bits), _bytes_int32(b, sec)], axis=0)  # [bytes, 8 / bits]
        return _fit(b, x, -(-count * bits // 8) * (8 // bits), count, shape)
    groups = -(-count // 8)
    raw = np.zeros(groups * bits, dtype=np.uint8)
    data = np.asarray(sec.data, dtype=np.uint8).ravel()
    raw[: data.size] = data
    x = b.op("Cast", [b.const("indices", raw.reshape(groups, bits))], to=TensorProto.FLOAT)
    x = b.op("MatMul", [x, b.const("unpack", unpack_matrix(bits))])
    if bits != 16:  # at 16 bits every value is two whole bytes: already exact
        x = b.op("Floor", [x])
        x = b.op("Mod", [x, b.const("modulus", np.array(float(1 << bits), dtype=np.float32))], fmod=1)
    x = b.op("Cast", [x], to=TensorProto.INT32)
    return _fit(b, x, groups * 8, count, shape)


def _bytes_int32(b: _Builder, sec) -> str:
    """The packed bytes as one uint8 initializer, widened in-graph to int32 (Gather's index type)."""
    data = np.asarray(sec.data, dtype=np.uint8).ravel()
    return b.op("Cast", [b.const("indices", data)], to=TensorProto.INT32)


def _byte_table(b: _Builder, bits: int) -> str:
    """int32 [256, 8 / bits]: the values packed in each possible byte, lowest bits first (computed
    once per width for the whole graph: the first layer that needs it builds it, the rest reuse it)."""
    key = f"byte_table{bits}"
    if key in b.shared:
        return b.shared[key]
    per = 8 // bits
    prefix, b.prefix = b.prefix, f"vq_bytes{bits}"  # a name of its own: it is no one layer's

    def scalar(what, v):
        return b.const(what, np.array(v, dtype=np.int32))

    byte = b.op("Range", [scalar("byte_start", 0), scalar("byte_limit", 256), scalar("byte_delta", 1)])
    byte = b.op("Reshape", [byte, b.shape("byte_column", [256, 1])])
    shifts = b.const("byte_shifts", (1 << (bits * np.arange(per))).astype(np.int32).reshape(1, per))
    b.shared[key] = b.op("Mod", [b.op("Div", [byte, shifts]), scalar("byte_modulus", 1 << bits)])
    b.prefix = prefix
    return b.shared[key]


def _fit(b: _Builder, x: str, total: int, count: int, shape, output: str | None = None) -> str:
    """Reshape `total` values to `shape`, dropping the padding past `count`."""
    if total != count:
        x = b.op("Reshape", [x, b.shape("flat", [-1])])
        x = b.op("Slice", [x, b.shape("start", [0]), b.shape("count", [count]), b.shape("axis0", [0])])
    return b.op("Reshape", [x, b.shape("index_shape", shape)], output)


def _codebook(b: _Builder, t: CompressedTensor, role: str = "codebook") -> str:
    sec = t.sections[role]
    name = b.const(role, np.asarray(sec.data))
    return b.op("Cast", [name], to=TensorProto.FLOAT) if sec.dtype != "float32" else name


def _offsets(b: _Builder, idx: str, segments: int, k: int) -> str:
    """idx [segments, N] + j*k per row j: indices into the codebook flattened to [segments*k, ...]."""
    def scalar(what, v):
        return b.const(what, np.array(v, dtype=np.int32))

    off = b.op("Range", [scalar("off_start", 0), scalar("off_limit", segments * k), scalar("off_delta", k)])
    off = b.op("Reshape", [off, b.shape("column", [-1, 1])])
    return b.op("Add", [idx, off])


def decode_subgraph(t: CompressedTensor, output: str, transposed: bool = False, prefix: str = "vq",
                    shared: dict | None = None):
    """ONNX nodes and initializers that compute t's weight into `output`: its matrix W [m, n] (or
    W^T), reshaped to the tensor's own shape when it has more than 2 dimensions (a conv's filters).
    prefix: unique to this tensor in the graph; the exporter numbers them, short on purpose.
    shared: the same dict for every layer of one graph, to build common tables once."""
    chain = CHAINS.get(t.method)
    if chain is None:
        raise VqexportError(f"{t.name}: method {t.method!r} has no ONNX decode")
    b = _Builder(prefix, shared)
    nd = len(t.shape) != 2
    final = None if nd else output
    if t.method in TRANSPOSES_ITSELF:
        w = chain(b, t, final, transposed)
    else:
        w = chain(b, t, None if transposed else final)
        if transposed:
            w = b.op("Transpose", [w], final, perm=[1, 0])
    if nd:
        last = b.nodes[-1]
        if last.op_type == "Reshape" and last.output[0] == w:  # reshape once, straight to the tensor's shape
            last.input[1] = b.shape("tensor_shape", list(t.shape))
            last.output[0] = output
        else:
            b.op("Reshape", [w, b.shape("tensor_shape", list(t.shape))], output)
        b.inits = [i for i in b.inits if any(i.name in n.input for n in b.nodes)]  # the dropped shape
    return b.nodes, b.inits


def _group_offsets(b: _Builder, t: CompressedTensor, per_group: int, shape) -> str:
    """int32 g(r) * per_group for each row r of the matrix, shaped `shape`: the start of each row's
    group in a codebook flattened group-major."""
    m = t.matrix[0]
    return b.const("group_offsets", ((np.arange(m) // (m // t.groups)) * per_group).astype(np.int32).reshape(shape))


def _pq(b: _Builder, t: CompressedTensor, output: str | None, transposed: bool) -> str:
    """The layout is a Transpose + Reshape either way, so W^T costs nothing extra."""
    m, n = t.matrix
    *_, s, k, d = t.sections["codebook"].shape
    cb = b.op("Reshape", [_codebook(b, t), b.shape("flat_codebook", [t.groups * s * k, d])])
    idx = _offsets(b, _unpack(b, t), s, k)
    if t.groups > 1:  # by columns: the codebooks of row r's group start at g(r) * s * k
        idx = b.op("Add", [idx, _group_offsets(b, t, s * k, [1, m])])
    parts = b.op("Gather", [cb, idx], axis=0)  # [s, vectors, d]
    # columns: W[r, j*d+c] = parts[j, r, c]; rows: W[j*d+c, col] = parts[j, col, c]
    along_rows = t.rows != transposed  # the output's rows are the segments': [s, d, vectors]
    parts = b.op("Transpose", [parts], perm=[0, 2, 1] if along_rows else [1, 0, 2])
    return b.op("Reshape", [parts, b.shape("weight_shape", [n, m] if transposed else [m, n])], output)


def _scalar(b: _Builder, t: CompressedTensor, final: str | None) -> str:
    """binary and kmeans: W.flat[i] = codebook[g(i)][I[i]]."""
    m, n = t.matrix
    if t.groups > 1:
        cb = b.op("Reshape", [_codebook(b, t), b.shape("flat_codebook", [-1])])
        idx = b.op("Add", [_unpack(b, t, [m, n]), _group_offsets(b, t, t.sections["codebook"].shape[1], [m, 1])])
        return b.op("Gather", [cb, idx], final, axis=0)
    if 8 % t.bits == 0:
        # gather the weights of every possible byte once, then one lookup per stored byte
        table = b.op("Gather", [_codebook(b, t), _byte_table(b, t.bits)], axis=0)  # [256, 8 / bits]
        x = b.op("Gather", [table, _bytes_int32(b, t.sections["indices"])], axis=0)
        return _fit(b, x, -(-m * n * t.bits // 8) * (8 // t.bits), m * n, [m, n], final)
    return b.op("Gather", [_codebook(b, t), _unpack(b, t, [m, n])], final, axis=0)


def _rq(b: _Builder, t: CompressedTensor, final: str | None) -> str:
    _, n = t.matrix
    stages, k, _ = t.sections["codebook"].shape
    cb = b.op("Reshape", [_codebook(b, t), b.shape("flat_codebook", [stages * k, n])])
    parts = b.op("Gather", [cb, _offsets(b, _unpack(b, t), stages, k)], axis=0)  # [stages, m, n]
    w = None
    for i in range(stages):  # a chain of Adds, stage 0 first, as the reference sums
        last = i == stages - 1
        part = b.op("Gather", [parts, b.const(f"stage{i}", np.array(i, dtype=np.int64))],
                    final if last and stages == 1 else None, axis=0)
        w = part if w is None else b.op("Add", [w, part], final if last else None)
    return w


def _svd(b: _Builder, t: CompressedTensor, final: str | None) -> str:
    """W = A @ B, folded once like the rest: the graph runs the dense layer."""
    return b.op("MatMul", [_codebook(b, t, "factor_a"), _codebook(b, t, "factor_b")], final)


def _vq(b: _Builder, t: CompressedTensor, final: str | None) -> str:
    """W[r, j*d:(j+1)*d] = codebook[g(r)][I[r, j]]."""
    m, n = t.matrix
    g, k, d = t.sections["codebook"].shape
    cb = b.op("Reshape", [_codebook(b, t), b.shape("flat_codebook", [g * k, d])])
    idx = _unpack(b, t, [m, n // d])
    if g > 1:
        idx = b.op("Add", [idx, _group_offsets(b, t, k, [m, 1])])
    parts = b.op("Gather", [cb, idx], axis=0)  # [m, n/d, d]
    return b.op("Reshape", [parts, b.shape("weight_shape", [m, n])], final)


CHAINS = {"binary": _scalar, "kmeans": _scalar, "pq": _pq, "rq": _rq, "svd": _svd, "vq": _vq}
TRANSPOSES_ITSELF = {"pq"}  # writes W^T directly; the others are followed by a Transpose

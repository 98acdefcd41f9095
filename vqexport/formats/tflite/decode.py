"""Decode chains: TFLite builtin ops that rebuild one dense weight from its compressed form.

Index storage. The b-bit indices are kept as the same least-significant-bit-first stream as
the .vqm file (docs/FORMAT.md, "Bit packing"), read as little-endian int32 words. With
g = gcd(b, 32), every P_w = b/g words hold exactly P_v = 32/g indices, so the words are a
constant [G, P_w] tensor and the indices come out as a [G, P_v] tensor, column j of which is
index j of each group: it starts at bit j*b, in word (j*b) div 32 at shift s = (j*b) mod 32.

    lo = GATHER(words, w0, axis=1)           # only when P_w > 1; else words [G, 1] broadcasts
    v  = FLOOR_MOD(RIGHT_SHIFT(lo, s), 2^n_lo)          n_lo = min(b, 32 - s)
    # an index that straddles two words (b not dividing 32) takes its top bits from the next:
    v += MUL(FLOOR_MOD(GATHER(words, w0 + 1, axis=1), 2^n_hi), 2^n_lo)    n_hi = b - n_lo

RIGHT_SHIFT is arithmetic on int32, and FLOOR_MOD by a power of two keeps exactly the low bits
of a negative number too, so all 32 bits of a word hold payload. The stored size is the ideal
count*b bits plus at most P_w - 1 words of padding per tensor. TFLite 2.16 has no bitwise AND,
and GATHER takes int32 indices, so this is the cheapest exact decode with builtin ops.

Codebook lookups (m outputs x n inputs; k entries; `cb` widened by DEQUANTIZE when float16):
    binary/kmeans  GATHER(cb[k], idx in the weight tensor's own element order)
    pq (columns)   GATHER(cb[s*k, d], idx[m, s] + j*k) -> [m, s, d] -> RESHAPE [m, n]
    pq (rows)      the same on W^T: GATHER(cb[s*k, d], idx[n, s] + j*k) -> [n, m]
    rq             GATHER(cb[t*k, n], idx[t, m] + stage*k) -> [t, m, n] -> UNPACK, ADD stage 0 first
    svd            BATCH_MATMUL(A[m, r], B[r, n]) (adj_x/adj_y give W^T directly)
A TRANSPOSE follows when the converter stored the weight the other way round.
"""
from __future__ import annotations

from math import gcd

import numpy as np

from ... import bitpack
from ...errors import VqexportError
from ...ir import Section


def word_layout(bits: int) -> tuple[int, int]:
    """(words, indices) per group for b-bit indices in int32 words."""
    g = gcd(bits, 32)
    return bits // g, 32 // g


def pack_words(values: np.ndarray, bits: int) -> np.ndarray:
    """The indices as int32 words [G, P_w] (the .vqm bit stream, padded to whole groups)."""
    pw, pv = word_layout(bits)
    values = np.asarray(values).ravel()
    groups = max(1, -(-values.size // pv))
    padded = np.zeros(groups * pv, dtype=np.uint32)
    padded[: values.size] = values
    data = bitpack.pack(padded, bits)
    assert len(data) == groups * pw * 4
    return np.frombuffer(data, dtype="<i4").reshape(groups, pw)


def stream_words(section, bits: int) -> np.ndarray:
    """pack_words of a packed section's indices in their stored order, from its bytes: the .vqm's
    bit stream is already the words' layout, so a 100 M-index layer is neither unpacked (200 MB of
    uint16) nor repacked (400 MB of uint32)."""
    pw, pv = word_layout(bits)
    count = section.count
    groups = max(1, -(-count // pv))
    words = np.zeros(groups * pw * 4, dtype=np.uint8)
    src = np.asarray(section.data, dtype=np.uint8).ravel()[: bitpack.packed_nbytes(count, bits)]
    words[: src.size] = src
    return words.view("<i4").reshape(groups, pw)


def unpack_words_reference(words: np.ndarray, bits: int, count: int) -> np.ndarray:
    """numpy mirror of the op chain (for tests): int32 words -> indices."""
    pw, pv = word_layout(bits)
    j = np.arange(pv)
    s = (j * bits) % 32
    w0 = (j * bits) // 32
    n_lo = np.minimum(bits, 32 - s)
    n_hi = bits - n_lo
    w1 = np.where(n_hi > 0, w0 + 1, w0)
    lo = np.mod(words[:, w0] >> s, 1 << n_lo)
    hi = np.mod(words[:, w1], 1 << n_hi) * (1 << n_lo)
    return (lo + hi).ravel()[:count]


class Chain:
    """Emits the ops of one decode into subgraph `sg` of an Editor."""

    def __init__(self, ed, sg: int, prefix: str):
        self.ed, self.sg, self.prefix = ed, sg, prefix
        self.ops = 0

    def const(self, name: str, array) -> int:
        return self.ed.const(self.sg, f"{self.prefix}/{name}", np.asarray(array))

    def emit(self, op: str, inputs, shape, dtype: str, out: int | None = None, options=None,
             options_type=None, version: int = 1, name: str | None = None) -> int:
        if out is None:
            out = self.ed.tensor(self.sg, f"{self.prefix}/{name or op.lower()}{self.ops}", shape, dtype)
        self.ed.op(self.sg, op, inputs, [out], options, options_type, version)
        self.ops += 1
        return out

    def reshape(self, x: int, shape, dtype: str, out=None) -> int:
        shape = [int(v) for v in shape]
        opts = self.ed.options("ReshapeOptions", newShape=list(shape))
        return self.emit("RESHAPE", [x, self.const(f"shape{self.ops}", np.array(shape, np.int32))], shape, dtype,
                         out, opts, "ReshapeOptions")

    def transpose(self, x: int, shape, out=None) -> int:
        a, b = shape
        return self.emit("TRANSPOSE", [x, self.const(f"perm{self.ops}", np.array([1, 0], np.int32))], [b, a],
                         "float32", out, self.ed.options("TransposeOptions"), "TransposeOptions")

    def permute(self, x: int, shape, axes, out=None) -> int:
        return self.emit("TRANSPOSE", [x, self.const(f"perm{self.ops}", np.array(axes, np.int32))],
                         [shape[a] for a in axes], "float32", out, self.ed.options("TransposeOptions"),
                         "TransposeOptions")

    def gather(self, params: int, idx: int, shape, dtype: str, axis: int = 0) -> int:
        opts = self.ed.options("GatherOptions", axis=axis, batchDims=0)
        return self.emit("GATHER", [params, idx], shape, dtype, None, opts, "GatherOptions")

    def binary(self, op: str, a: int, b: int, shape, dtype: str = "int32", out=None) -> int:
        kind = {"ADD": "AddOptions", "MUL": "MulOptions", "FLOOR_MOD": "FloorModOptions",
                "RIGHT_SHIFT": "RightShiftOptions"}[op]
        return self.emit(op, [a, b], shape, dtype, out, self.ed.options(kind), kind)

    # -- pieces of a decode ---------------------------------------------------------------------
    def indices(self, values, bits: int, shape) -> int:
        """Store `values` (any order the caller chose; or a packed section, in its stored order) packed;
        emit their unpacking into int32 `shape`."""
        count = int(np.prod(shape))
        words = stream_words(values, bits) if isinstance(values, Section) else pack_words(values, bits)
        groups, pw = words.shape
        _, pv = word_layout(bits)
        j = np.arange(pv)
        s = ((j * bits) % 32).astype(np.int32)
        w0 = ((j * bits) // 32).astype(np.int32)
        n_lo = np.minimum(bits, 32 - s)
        n_hi = bits - n_lo
        wt = self.const("words", words)
        if pw == 1:
            lo = self.binary("RIGHT_SHIFT", wt, self.const("shift", s), [groups, pv])
            v = self.binary("FLOOR_MOD", lo, self.const("mod", np.array([1 << bits], np.int32)), [groups, pv])
        else:
            lo = self.gather(wt, self.const("w0", w0), [groups, pv], "int32", axis=1)
            lo = self.binary("RIGHT_SHIFT", lo, self.const("shift", s), [groups, pv])
            lo = self.binary("FLOOR_MOD", lo, self.const("mod_lo", (1 << n_lo).astype(np.int32)), [groups, pv])
            w1 = np.where(n_hi > 0, w0 + 1, w0).astype(np.int32)
            hi = self.gather(wt, self.const("w1", w1), [groups, pv], "int32", axis=1)
            hi = self.binary("FLOOR_MOD", hi, self.const("mod_hi", (1 << n_hi).astype(np.int32)), [groups, pv])
            hi = self.binary("MUL", hi, self.const("scale_hi", (1 << n_lo).astype(np.int32)), [groups, pv])
            v = self.binary("ADD", lo, hi, [groups, pv])
        if groups * pv == count:
            return self.reshape(v, shape, "int32")
        flat = self.reshape(v, [groups * pv], "int32")
        flat = self.emit("SLICE", [flat, self.const(f"begin{self.ops}", np.array([0], np.int32)),
                                   self.const(f"size{self.ops}", np.array([count], np.int32))],
                         [count], "int32", None, self.ed.options("SliceOptions"), "SliceOptions")
        return self.reshape(flat, shape, "int32")

    def codebook(self, cb: np.ndarray, shape) -> int:
        """The codebook as a float32 tensor: stored as is, or float16 widened by DEQUANTIZE."""
        cb = np.asarray(cb).reshape(shape)
        if cb.dtype == np.float16:
            half = self.const("codebook_f16", cb)
            return self.emit("DEQUANTIZE", [half], list(cb.shape), "float32", version=3, name="codebook")
        return self.const("codebook", cb.astype(np.float32))


def build(ed, sg: int, t, target_shape, layout, out: int | None, prefix: str) -> tuple[int, int]:
    """Emit the decode of CompressedTensor `t` into the weight tensor's shape; returns (tensor, ops).

    layout: "W" (target is [m, n]), "WT" (target is [n, m]), or an int array `perm` with
    target.flat[p] = W.flat[perm[p]] (FOLLOWS_ANY_ORDER only; the exporter checks before).
    """
    chain = CHAINS.get(t.method)
    if chain is None:
        raise TfliteDecodeError(f"{t.name}: method {t.method!r} has no TFLite decode")
    c = Chain(ed, sg, prefix)
    target_shape = [int(v) for v in target_shape]
    follows = t.method in FOLLOWS_ANY_ORDER and t.groups == 1  # one index per weight, one codebook
    if isinstance(layout, tuple) and follows:  # permute the indices, not the weights
        layout = np.arange(t.numel).reshape(t.shape).transpose(layout).ravel()
    if isinstance(layout, np.ndarray) and not follows:
        raise TfliteDecodeError(f"{t.name}: the converter reordered its weight; {t.method} with grouped codebooks "
                                "can only follow a kept, transposed or axis-permuted weight")
    if not follows and (isinstance(layout, tuple) or (layout == "W" and len(t.shape) != 2)):
        # the matrix, then the tensor's own shape, then the converter's axis order
        w = chain(c, t, list(t.matrix), "W", None)
        if layout == "W":
            return c.reshape(w, target_shape, "float32", out=out), c.ops
        w = c.reshape(w, list(t.shape), "float32")
        return c.permute(w, list(t.shape), layout, out=out), c.ops
    w = chain(c, t, target_shape, layout, out)
    return w, c.ops


def _scalar(c: Chain, t, target_shape, layout, out) -> int:
    """binary and kmeans: one index per weight, so any element order the converter chose is followed
    (with one codebook; grouped codebooks add each row's group offset, in the matrix's own order)."""
    m, n = t.matrix
    if t.groups > 1:
        cb = _codebook(t)
        ix = c.indices(t.sections["indices"], t.bits, [m, n])
        ix = c.binary("ADD", ix, c.const("group_offsets", _group_offsets(t, cb.shape[1], [m, 1])), [m, n])
        w = c.gather(c.codebook(cb.reshape(-1), [cb.size]), ix, [m, n], "float32")
        return _finish(c, w, [m, n], "W", layout, target_shape, out, reshape=True)
    idx = t.sections["indices"]  # torch's order: the stored stream as it is
    if isinstance(layout, np.ndarray):
        idx = t.indices().ravel()[layout]
    elif layout == "WT":
        idx = t.indices().reshape(m, n).T.ravel()
    ix = c.indices(idx, t.bits, target_shape)
    opts = c.ed.options("GatherOptions", axis=0, batchDims=0)
    return c.emit("GATHER", [c.codebook(_codebook(t), [t.k]), ix], target_shape, "float32", out, opts,
                  "GatherOptions")


def _pq(c: Chain, t, target_shape, layout, out) -> int:
    idx = t.indices()  # [s, vectors]
    s, vectors = idx.shape
    ix = c.indices(idx.T.ravel(), t.bits, [vectors, s])
    if s > 1:
        ix = c.binary("ADD", ix, c.const("offsets", (np.arange(s, dtype=np.int32) * t.k)), [vectors, s])
    if t.groups > 1:  # by columns: row r's codebooks start at g(r) * s * k
        ix = c.binary("ADD", ix, c.const("group_offsets", _group_offsets(t, s * t.k, [vectors, 1])), [vectors, s])
    cbt = c.codebook(_codebook(t).reshape(-1, t.d), [t.groups * s * t.k, t.d])
    g = c.gather(cbt, ix, [vectors, s, t.d], "float32")
    return _finish(c, g, [vectors, s * t.d], "WT" if t.rows else "W", layout, target_shape, out, reshape=True)


def _rq(c: Chain, t, target_shape, layout, out) -> int:
    m, n = t.matrix
    st = t.stages
    ix = c.indices(t.sections["indices"], t.bits, [st, m])  # stored [stages, m]
    if st > 1:
        ix = c.binary("ADD", ix, c.const("offsets", (np.arange(st, dtype=np.int32) * t.k)[:, None]), [st, m])
    cbt = c.codebook(_codebook(t), [st * t.k, n])
    g = c.gather(cbt, ix, [st, m, n], "float32")
    if st == 1:
        return _finish(c, g, [m, n], "W", layout, target_shape, out, reshape=True)
    ed, sg, prefix = c.ed, c.sg, c.prefix
    parts = [ed.tensor(sg, f"{prefix}/stage{i}", [m, n], "float32") for i in range(st)]
    ed.op(sg, "UNPACK", [g], parts, ed.options("UnpackOptions", num=st, axis=0), "UnpackOptions")
    c.ops += 1
    acc = parts[0]
    for i in range(1, st):
        last = i == st - 1 and layout == "W"
        acc = c.binary("ADD", acc, parts[i], [m, n], "float32", out=out if last else None)
    return acc if layout == "W" else _finish(c, acc, [m, n], "W", layout, target_shape, out)


def _svd(c: Chain, t, target_shape, layout, out) -> int:
    a = c.const("factor_a", np.asarray(t.sections["factor_a"].data, np.float32))
    b = c.const("factor_b", np.asarray(t.sections["factor_b"].data, np.float32))
    wt = layout == "WT"
    opts = c.ed.options("BatchMatMulOptions", adjX=wt, adjY=wt, asymmetricQuantizeInputs=False)
    return c.emit("BATCH_MATMUL", [b, a] if wt else [a, b], target_shape, "float32", out, opts, "BatchMatMulOptions")


def _vq(c: Chain, t, target_shape, layout, out) -> int:
    """W[r, j*d:(j+1)*d] = codebook[g(r)][I[r, j]]."""
    m, n = t.matrix
    g, k, d = t.sections["codebook"].shape
    ix = c.indices(t.sections["indices"], t.bits, [m, n // d])
    if g > 1:
        ix = c.binary("ADD", ix, c.const("group_offsets", _group_offsets(t, k, [m, 1])), [m, n // d])
    cbt = c.codebook(_codebook(t).reshape(g * k, d), [g * k, d])
    parts = c.gather(cbt, ix, [m, n // d, d], "float32")
    return _finish(c, parts, [m, n], "W", layout, target_shape, out, reshape=True)


def _codebook(t) -> np.ndarray:
    return np.asarray(t.sections["codebook"].data)


def _group_offsets(t, per_group: int, shape) -> np.ndarray:
    """int32 g(r) * per_group for each row r: where row r's group starts in the flattened codebook."""
    m = t.matrix[0]
    return ((np.arange(m) // (m // t.groups)) * per_group).astype(np.int32).reshape(shape)


CHAINS = {"binary": _scalar, "kmeans": _scalar, "pq": _pq, "rq": _rq, "svd": _svd, "vq": _vq}
FOLLOWS_ANY_ORDER = {"binary", "kmeans"}  # one index per weight: can follow a converter's reordering


class TfliteDecodeError(VqexportError):
    """A weight that no decode chain can produce in the layout the converter chose."""


def _finish(c: Chain, x: int, shape, natural: str, layout: str, target_shape, out, reshape: bool = False) -> int:
    """From tensor x (decoded in `natural` layout, 2-D `shape` after an optional reshape) to the target."""
    if natural == layout:
        if reshape:
            return c.reshape(x, target_shape, "float32", out=out)
        return x
    if reshape:
        x = c.reshape(x, shape, "float32")
    return c.transpose(x, shape, out=out)

"""Flatbuffer surgery on a .tflite through the schema's generated object API (LiteRT's schema_py_generated).

A small editor over `ModelT`: add buffers, tensors, operator codes and operators, write the
metadata entries, and serialize with every buffer aligned to 16 bytes (as TFLite's converters
do, so kernels and XNNPACK may read constants in place). Also the checks the tests and the
exporter share: the op-version table of the TFLite 2.16.1 runtime and min_runtime_version.
"""
from __future__ import annotations

import json
import mmap
import os
import stat
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import VqexportError
from .. import METADATA_KEY

ALIGN = 16
OP_VERSIONS_FILE = Path(__file__).with_name("op_versions.json")
METADATA_NAME = METADATA_KEY
MIN_RUNTIME = "min_runtime_version"

_NP_TYPE = {"float32": "FLOAT32", "float16": "FLOAT16", "int32": "INT32", "int64": "INT64",
            "uint8": "UINT8", "int16": "INT16", "int8": "INT8", "bool": "BOOL", "resource": "RESOURCE"}


class TfliteLoadError(VqexportError):
    """A .tflite that cannot be read or expanded."""


@lru_cache(maxsize=1)
def schema():
    # LiteRT's copy of the generated schema: reading a file must not import TensorFlow (2 s, 600 MiB).
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


@lru_cache(maxsize=1)
def op_names() -> dict[int, str]:
    s = schema()
    return {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}


@lru_cache(maxsize=1)
def op_table() -> dict:
    return json.loads(OP_VERSIONS_FILE.read_text())


def read_model(data: bytes):
    s = schema()
    buf = bytearray(data)
    model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(buf, 0))
    for b in model.buffers:  # buffers stored past the flatbuffer (models over 2 GB)
        if b.offset and b.offset + b.size <= len(buf):  # (past the end: a decode="load" slot)
            b.data = np.frombuffer(bytes(buf[b.offset:b.offset + b.size]), dtype=np.uint8)
            b.offset = b.size = 0
    return model


def builtin_code(opcode) -> int:
    return max(int(opcode.builtinCode), int(opcode.deprecatedBuiltinCode))


def serialize(model) -> bytes:
    """Pack `model`, every non-empty buffer aligned to 16 bytes."""
    import flatbuffers

    s = schema()

    class _Aligned(s.BufferT):
        def Pack(self, builder):
            data = None
            if self.data is not None and len(self.data):
                payload = np.ascontiguousarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(payload), ALIGN)
                builder.head -= len(payload)
                builder.Bytes[builder.head:builder.head + len(payload)] = payload
                data = builder.EndVector()
            s.BufferStart(builder)
            if data is not None:
                s.BufferAddData(builder, data)
            if self.offset:  # data placed after the flatbuffer (see external.py)
                s.BufferAddOffset(builder, self.offset)
                s.BufferAddSize(builder, self.size)
            return s.BufferEnd(builder)

    original = model.buffers
    model.buffers = []
    for b in original:
        a = _Aligned()
        a.data, a.offset, a.size = b.data, b.offset, b.size
        model.buffers.append(a)
    try:
        total = sum(len(b.data) for b in original if b.data is not None)
        builder = flatbuffers.Builder(total + (1 << 20))
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
    finally:
        model.buffers = original


def drop_unused_tensors(model, sg: int, keep=()) -> dict[int, int]:
    """Remove the tensors of subgraph `sg` that no operator, input, output, signature or `keep`
    names, and the buffers only they held; returns {old index: new index} of the tensors kept."""
    g = model.subgraphs[sg]
    used = {int(i) for op in g.operators for i in (*op.inputs, *op.outputs) if i >= 0}
    used |= {int(i) for i in (*g.inputs, *g.outputs)} | set(keep)
    sigs = [s for s in model.signatureDefs or [] if s.subgraphIndex == sg]
    used |= {int(item.tensorIndex) for s in sigs for item in (*s.inputs, *s.outputs)}
    remap = {old: new for new, old in enumerate(sorted(used))}
    freed = {int(t.buffer) for i, t in enumerate(g.tensors) if i not in remap and t.buffer}
    g.tensors = [t for i, t in enumerate(g.tensors) if i in remap]
    for op in g.operators:
        op.inputs = np.array([remap[int(i)] if i >= 0 else -1 for i in op.inputs], dtype=np.int32)
        op.outputs = np.array([remap[int(i)] for i in op.outputs], dtype=np.int32)
    g.inputs = np.array([remap[int(i)] for i in g.inputs], dtype=np.int32)
    g.outputs = np.array([remap[int(i)] for i in g.outputs], dtype=np.int32)
    for s in sigs:
        for item in (*s.inputs, *s.outputs):
            item.tensorIndex = remap[int(item.tensorIndex)]
    freed -= {int(t.buffer) for sub in model.subgraphs for t in sub.tensors}
    freed -= {int(md.buffer) for md in model.metadata or []}
    if freed:  # buffers are indexed from every subgraph and the metadata: renumber them all
        moved = {old: new for new, old in enumerate(i for i in range(len(model.buffers)) if i not in freed)}
        model.buffers = [b for i, b in enumerate(model.buffers) if i not in freed]
        for sub in model.subgraphs:
            for t in sub.tensors:
                t.buffer = moved[int(t.buffer)]
        for md in model.metadata or []:
            md.buffer = moved[int(md.buffer)]
    return remap


SHARED_CONST_BYTES = 1024


class Editor:
    """Adds things to a ModelT; new operators are collected per subgraph and prepended by finish()."""

    def __init__(self, model):
        self.m = model
        self.s = schema()
        self._pending: dict[int, list] = {}
        self._small: dict[tuple, int] = {}

    # -- pieces -------------------------------------------------------------------------------
    def opcode(self, name: str, version: int = 1) -> int:
        code = getattr(self.s.BuiltinOperator, name)
        for i, oc in enumerate(self.m.operatorCodes):
            if builtin_code(oc) == code and oc.version == version:
                return i
        oc = self.s.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = version
        self.m.operatorCodes.append(oc)
        return len(self.m.operatorCodes) - 1

    def buffer(self, data=None) -> int:
        b = self.s.BufferT()
        if data is not None:
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
        self.m.buffers.append(b)
        return len(self.m.buffers) - 1

    def tensor(self, sg: int, name: str, shape, dtype: str, data=None, signature=None) -> int:
        t = self.s.TensorT()
        t.name = name.encode()
        t.shape = np.array(shape, dtype=np.int32)
        if signature is not None and list(signature) != list(shape):
            t.shapeSignature = np.array(signature, dtype=np.int32)
        t.type = getattr(self.s.TensorType, _NP_TYPE[dtype])
        if data is not None:
            data = np.ascontiguousarray(data, dtype=np.dtype(dtype).newbyteorder("<"))
            if list(data.shape) != [int(x) for x in shape]:
                raise ValueError(f"{name}: data shape {data.shape} != {shape}")
        t.buffer = self.buffer(data)
        g = self.m.subgraphs[sg]
        g.tensors.append(t)
        return len(g.tensors) - 1

    def const(self, sg: int, name: str, array: np.ndarray) -> int:
        """A constant tensor; a small one (shapes, shifts, moduli) equal to one made before in this
        subgraph is that tensor again: every layer's decode chain needs the same few tables, and on
        a model of many small layers their tensors and buffers cost more than the 2 % size slack."""
        array = np.asarray(array)
        if array.nbytes > SHARED_CONST_BYTES:
            return self.tensor(sg, name, array.shape, str(array.dtype), array)
        key = (sg, str(array.dtype), array.shape, array.tobytes())
        if key not in self._small:
            self._small[key] = self.tensor(sg, name, array.shape, str(array.dtype), array)
        return self._small[key]

    def op(self, sg: int, name: str, inputs, outputs, options=None, options_type: str | None = None,
           version: int = 1):
        o = self.s.OperatorT()
        o.opcodeIndex = self.opcode(name, version)
        o.inputs = np.array(inputs, dtype=np.int32)
        o.outputs = np.array(outputs, dtype=np.int32)
        if options is not None:
            o.builtinOptionsType = getattr(self.s.BuiltinOptions, options_type)
            o.builtinOptions = options
        self._pending.setdefault(sg, []).append(o)
        return o

    def options(self, kind: str, **fields):
        obj = getattr(self.s, kind + "T")()
        for k, v in fields.items():
            if not hasattr(obj, k):
                raise AttributeError(f"{kind} has no field {k}")
            setattr(obj, k, v)
        return obj

    def subgraph(self, name: str) -> int:
        g = self.s.SubGraphT()
        g.name = name.encode()
        g.tensors, g.inputs, g.outputs, g.operators = [], np.zeros(0, np.int32), np.zeros(0, np.int32), []
        self.m.subgraphs.append(g)
        return len(self.m.subgraphs) - 1

    def finish(self) -> None:
        """Put the new operators of each subgraph before its existing ones (they only feed them)."""
        for sg, ops in self._pending.items():
            g = self.m.subgraphs[sg]
            g.operators = ops + list(g.operators or [])
        self._pending = {}

    # -- metadata ------------------------------------------------------------------------------
    def metadata(self, name: str) -> bytes | None:
        """Entry `name` of the tree being edited (files are read with read_metadata)."""
        for md in self.m.metadata or []:
            if md.name in (name, name.encode()):
                data = self.m.buffers[md.buffer].data
                return b"" if data is None else bytes(np.asarray(data, dtype=np.uint8))
        return None

    def set_metadata(self, name: str, payload: bytes) -> None:
        for md in self.m.metadata or []:
            if md.name in (name, name.encode()):
                self.m.buffers[md.buffer].data = np.frombuffer(payload, dtype=np.uint8)
                return
        md = self.s.MetadataT()
        md.name = name.encode()
        md.buffer = self.buffer(np.frombuffer(payload, dtype=np.uint8))
        if self.m.metadata is None:
            self.m.metadata = []
        self.m.metadata.append(md)


# -- runtime compatibility -----------------------------------------------------------------------
def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def used_ops(model) -> list[tuple[str, int]]:
    """(builtin name, version) of every operator code an operator of the model uses."""
    names = op_names()
    seen = set()
    for g in model.subgraphs:
        for o in g.operators or []:
            oc = model.operatorCodes[o.opcodeIndex]
            seen.add((names.get(builtin_code(oc), f"CODE_{builtin_code(oc)}"), int(oc.version)))
    return sorted(seen)


def unsupported_ops(model) -> list[str]:
    """Ops above the TFLite 2.16.1 runtime's maxima (or custom / unknown ones); empty when all fit."""
    table = op_table()["max_version"]
    bad = []
    for name, version in used_ops(model):
        top = table.get(name)
        if top is None or version > top:
            bad.append(f"{name} v{version} (2.16.1 supports {'none' if top is None else f'v1..v{top}'})")
    for oc in model.operatorCodes:
        if builtin_code(oc) == schema().BuiltinOperator.CUSTOM:
            bad.append(f"custom op {oc.customCode!r}")
    return bad


def lower_op_versions(model) -> None:
    """Bring op versions that 2.16.1 lacks down to its maximum where that keeps the meaning.

    Only FULLY_CONNECTED is handled: versions 12 and 13 mark int4 / per-block quantized weights
    that float models never carry (checked here), so a float FULLY_CONNECTED runs the same at 11.
    """
    table = op_table()["max_version"]
    names = op_names()
    float_types = {schema().TensorType.FLOAT32}
    for i, oc in enumerate(model.operatorCodes):
        name = names.get(builtin_code(oc))
        top = table.get(name)
        if name != "FULLY_CONNECTED" or top is None or oc.version <= top:
            continue
        for g in model.subgraphs:
            for o in g.operators or []:
                if o.opcodeIndex == i and g.tensors[o.inputs[1]].type not in float_types:
                    return
        oc.version = top


def set_min_runtime_version(model, editor: Editor, floor: str = "1.5.0") -> str:
    """Raise min_runtime_version to what the ops vqexport added need (and to `floor`); never above 2.16.1."""
    current = (editor.metadata(MIN_RUNTIME) or b"").split(b"\0")[0].decode() or "1.5.0"
    table = op_table()["runtime_version"]
    need = max(current, floor, key=_version_tuple)
    for name, version in used_ops(model):
        v = table.get(f"{name}/{version}")
        if v and _version_tuple(v) > _version_tuple(need):
            need = v
    if _version_tuple(need) > (2, 16, 1):
        raise VqexportError(f"the exported model needs TFLite runtime {need}, above 2.16.1 (the Android app's)")
    editor.set_metadata(MIN_RUNTIME, need.encode().ljust(16, b"\0"))
    return need


# -- reading metadata: the only reader ------------------------------------------------------
def read_metadata(source, name: str) -> bytes | None:
    """The bytes of metadata entry `name` of a .tflite (a path, or its bytes), or None: the one reader.

    A file is memory-mapped, so only the flatbuffer's tables and that entry are read. Raises
    TfliteLoadError on a file whose tables point outside it.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _entries(source, (name,), "<bytes>").get(name)
    with mapped(source) as data:
        return _entries(data, (name,), str(source)).get(name)


def read_info(source) -> dict | None:
    """The JSON object of the "vqexport" entry, or None when there is none (a file not written here)."""
    from ..limits import loads_untrusted

    raw = read_metadata(source, METADATA_NAME)
    if raw is None:
        return None
    try:
        info = loads_untrusted(raw.split(b"\0")[0], "the vqexport metadata")
    except ValueError as e:
        raise TfliteLoadError(f"{source}: {e}") from None
    if not isinstance(info, dict):
        raise TfliteLoadError(f"{source}: the vqexport metadata is not a JSON object")
    return info


def _entries(data, names, where: str) -> dict[str, bytes]:
    try:
        return metadata_entries(schema().Model.GetRootAs(data, 0), data, names)
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as e:
        raise TfliteLoadError(f"{where}: not a readable .tflite ({type(e).__name__})") from None


def metadata_entries(model, data, names) -> dict[str, bytes]:
    """The metadata entries called one of `names`, inline or stored after the flatbuffer."""
    out = {}
    if 4 * (model.MetadataLength() + model.BuffersLength()) > len(data):  # each entry is a 4-byte offset
        raise IndexError("a table is longer than the file")
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        key = (md.Name() or b"").decode("utf-8")
        if key not in names:
            continue
        bi = md.Buffer()
        if not 0 <= bi < model.BuffersLength():
            raise ValueError(f"metadata {key} names buffer {bi}")
        b = model.Buffers(bi)
        if b.DataLength():
            out[key] = b.DataAsNumpy().tobytes()
        elif b.Offset() > 1:  # stored after the flatbuffer (models over 2 GB)
            if b.Offset() + b.Size() > len(data):
                raise IndexError(f"metadata {key} lies outside the file")
            out[key] = bytes(data[b.Offset():b.Offset() + b.Size()])
        else:
            out[key] = b""
    return out


class mapped:
    """A read-only memory map of a whole file (empty bytes for an empty file, which mmap refuses)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise TfliteLoadError(f"{self.path}: not a regular file")
        self._f = os.fdopen(fd, "rb")
        size = st.st_size
        self._m = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        return self._m if self._m is not None else b""

    def __exit__(self, *exc):
        if self._m is not None:
            self._m.close()
        self._f.close()

"""decode="load": a .tflite whose dense weights are decoded by the loader, before the interpreter exists.

Why: a weight computed inside the graph (decode "once" or "every-run") is not a constant when
XNNPACK looks at the graph, so FULLY_CONNECTED falls back to the builtin kernel (5x slower here).
A constant whose bytes are present when the interpreter is built is packed by XNNPACK like any
dense weight. TFLite (2.16.1 and LiteRT both) lets a Buffer point at `offset`/`size` bytes counted
from the start of the model instead of holding `data`; the format meant it for models over 2 GB.

The file: the dense graph exactly as the converter wrote it, except that each compressed weight's
Buffer points *past the end of the file*, into a "decode area" (64-byte aligned, in layer order),
and the compressed tensors travel inside the file as a .vqm in the metadata entry `vqexport.vqm`.
The loader decodes every weight into its slot with the reference decode and hands the result to
the interpreter: here `interpreter_source()` writes it to a temporary file that the interpreter
memory-maps (so it costs what a dense file costs), `TfliteExternal.java` in the app fills a direct
buffer. A stock interpreter refuses the bare file ("Constant buffer N
specified an out of range offset"): it never runs with missing weights.

The "vqexport" metadata JSON lists the slots: {"buffer": index, "layer": vqm name, "layout":
"W" | "WT", "shape": the tensor's shape}; the offsets live only in the Buffers.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from ...errors import VqexportError
from ...ir import CompressedModel
from ...methods.registry import decode
from ..limits import loads_untrusted, one_line, over_cap_message
from ..vqm import parse_vqm, write_vqm
from . import flatbuffer
from .flatbuffer import TfliteLoadError

EMBED_NAME = "vqexport.vqm"
AREA_ALIGN = 64
_PLACEHOLDER = 1 << 40  # any non-zero u64: the flatbuffer's length does not depend on the value


def attach(tfl, ed, targets: dict, tensors: dict) -> list[dict]:
    """Point each target tensor at a new out-of-file Buffer; returns the slot list for the metadata.

    targets: {(subgraph, tensor): (layer, layout)} with layout "W" or "WT" (the converter's
    orientation of the weight). The offsets are placeholders until place().
    """
    slots, shared = [], {}
    for (si, ti), (layer, layout) in sorted(targets.items()):
        if slot_axes(layout, len(tensors[layer].shape)) is None:
            raise TfliteLoadError(f"layer {layer}: the converter reordered its weight; decode='load' "
                                  "needs it kept, transposed or axis-permuted (use decode='once')")
        tensor = tfl.subgraphs[si].tensors[ti]
        if (layer, layout) in shared:  # a weight the graph uses twice: one slot, read by both
            tensor.buffer = shared[layer, layout]
            continue
        t = tensors[layer]
        bi = ed.buffer()
        b = tfl.buffers[bi]
        b.offset, b.size = _PLACEHOLDER, 4 * t.numel
        tensor.buffer = shared[layer, layout] = bi
        slots.append({"buffer": bi, "layer": layer, "layout": layout, "shape": [int(v) for v in tensor.shape]})
    return slots


def embed(ed, compressed: CompressedModel, layers: list[str], index_coding: str = "auto") -> None:
    """Store the compressed tensors named `layers` as a .vqm in the metadata entry vqexport.vqm,
    its indices Huffman-coded where that is smaller (index_coding "auto"): this .vqm is what the
    file carries of the weights, so the smallest download of a model is its decode="load" file."""
    part = CompressedModel([compressed[n] for n in dict.fromkeys(layers)],
                           {"format": "vqm", "embedded_in": "tflite"})
    fd, tmp = tempfile.mkstemp(prefix="vqexport-embed-", suffix=".vqm")
    os.close(fd)
    try:
        write_vqm(part, tmp, index_coding)
        data = Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)
    ed.set_metadata(EMBED_NAME, data)


def place(tfl, slots: list[dict]) -> tuple[bytes, int]:
    """Serialize with every slot's offset set, in order, after the file's own bytes.

    Returns the file and the bytes the loader adds after it (the decode area, alignment included).
    """
    first = flatbuffer.serialize(tfl)
    pos = _align(len(first))
    for s in slots:
        b = tfl.buffers[s["buffer"]]
        b.offset = pos
        pos = _align(pos + b.size)
    data = flatbuffer.serialize(tfl)
    if len(data) != len(first):  # cannot happen with fixed-width offsets; a slot would point wrong
        raise TfliteLoadError("the flatbuffer changed length when the slot offsets were set")
    end = max(tfl.buffers[s["buffer"]].offset + tfl.buffers[s["buffer"]].size for s in slots)
    return data, end - len(data)


def expand(data, name: str = "<bytes>", max_decoded_size: int | None = None):
    """The model with every slot filled, as bytes: a plain .tflite that any interpreter loads.

    A model that is not decode="load" comes back unchanged (the same object).
    """
    buf = io.BytesIO()
    return data if not write_expanded(data, buf, name, max_decoded_size) else buf.getvalue()


def write_expanded(data, f, name: str = "<bytes>", max_decoded_size: int | None = None) -> bool:
    """Write the model with every slot filled to the binary file `f`; False (nothing written) if not decode="load".

    Everything the file says (buffer indices, offsets, sizes, the embedded .vqm) is checked
    before anything is written, and the decode area against the decoded-size cap (limits.py;
    max_decoded_size replaces it).
    """
    plan = _plan(data, name, max_decoded_size)
    if plan is not None:
        _write(data, plan, f)
    return plan is not None


def _write(data, plan, f) -> None:
    """Layers are decoded in row blocks straight into place: no whole decoded copy besides the output."""
    slots, end, _ = plan
    f.write(data)
    f.write(bytes(end - len(data)))  # the area, and the padding between slots, are zeros
    for s, offset, t in slots:
        n = t.matrix[1]
        axes = slot_axes(s["layout"], len(t.shape))
        if axes != tuple(range(len(t.shape))):  # a permuted slot mixes rows: decode it at once
            f.seek(offset)
            f.write(np.ascontiguousarray(decode(t).transpose(axes), dtype="<f4").tobytes())
            continue
        for rows in t.row_blocks():
            f.seek(offset + 4 * rows.start * n)
            f.write(np.ascontiguousarray(decode(t, rows), dtype="<f4").tobytes())


def _plan(data: bytes, name: str, max_decoded_size: int | None = None):
    """(slots with offsets and tensors, total size, CompressedModel) or None when not decode="load"."""
    try:
        return _plan_checked(data, name, max_decoded_size)
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as e:  # flatbuffers on garbage
        if isinstance(e, VqexportError):  # our own errors (a ValueError subclass among them) say more
            raise
        why = "an offset points outside the file" if isinstance(e, (struct.error, IndexError)) else type(e).__name__
        raise TfliteLoadError(f"{name}: not a readable .tflite ({why})") from None


def _plan_checked(data: bytes, name: str, max_decoded_size: int | None):
    def fail(msg):
        raise TfliteLoadError(one_line(f"{name}: {msg}"))

    model = flatbuffer.schema().Model.GetRootAs(data, 0)
    meta = flatbuffer.metadata_entries(model, data, (flatbuffer.METADATA_NAME, EMBED_NAME))
    info = meta.get(flatbuffer.METADATA_NAME)
    if info is None:
        return None
    try:
        info = loads_untrusted(info, "the vqexport metadata")
    except ValueError as e:
        fail(str(e))
    if not isinstance(info, dict):
        fail("the vqexport metadata is not a JSON object")
    if info.get("decode") != "load":
        return None
    if EMBED_NAME not in meta:
        fail(f"decode='load' but the file has no {EMBED_NAME} metadata entry")
    vqm = parse_vqm(meta[EMBED_NAME], f"{name} ({EMBED_NAME})", max_decoded_size)
    slots = info.get("slots")
    if not isinstance(slots, list) or not slots:
        fail("decode='load' but the metadata lists no slots")
    start = _align(len(data))
    names = {t.name: t for t in vqm.tensors}
    parsed = []
    for s in slots:
        if not _is_slot(s):
            fail(f"malformed slot {str(s)[:200]}: it needs an integer buffer, a layer name, a layout (W, WT, axes:...) "
                 "and a shape of integers")
        parsed.append((s["buffer"], s["layer"], s["layout"], s["shape"], s))
    pairs = [(layer, layout) for _, layer, layout, _, _ in parsed]
    if len(set(pairs)) != len(pairs):
        fail("two slots for the same layer and layout")
    # Each (layer, layout) has one slot, so the area is at most twice the decoded .vqm: a file
    # cannot make the loader allocate more than the weights it describes, whatever its offsets say.
    budget = sum(_align(4 * names[layer].numel) for layer, _ in pairs if layer in names)
    over = over_cap_message("the decode area holds", budget, len(data), max_decoded_size)
    if over:
        fail(over)
    out, end, taken = [], start, []
    for bi, layer, layout, shape, s in parsed:
        if not 0 <= bi < model.BuffersLength():
            fail(f"slot for {layer} names buffer {bi} of {model.BuffersLength()}")
        if layer not in names:
            fail(f"slot names layer {layer}, which the embedded .vqm lacks")
        t = names[layer]
        axes = slot_axes(layout, len(t.shape))
        if axes is None or shape != [int(t.shape[a]) for a in axes]:
            fail(f"layer {layer}: slot {str(layout)[:40]} {str(shape)[:100]} does not fit its weight {list(t.shape)}")
        b = model.Buffers(bi)
        offset, size = int(b.Offset()), int(b.Size())
        if b.DataLength() or size != 4 * t.numel:
            fail(f"layer {layer}: buffer {bi} holds {size} bytes, expected {4 * t.numel}")
        if offset < start or offset % AREA_ALIGN or offset + size > start + budget:
            fail(f"layer {layer}: buffer {bi} offset {offset} lies outside the decode area "
                 f"[{start}, {start + budget})")
        taken.append((offset, offset + size, layer))
        out.append((dict(s, shape=shape), offset, t))
        end = max(end, offset + size)
    taken.sort()
    for (_, a1, la), (b0, _, lb) in itertools.pairwise(taken):
        if b0 < a1:
            fail(f"the slots of {la} and {lb} overlap")
    return out, end, vqm


def slot_axes(layout, ndim: int) -> tuple[int, ...] | None:
    """The axes a slot's layout permutes the weight by: W keeps them, WT swaps a 2-D weight's two,
    axes:i,j,... names them (a conv's OIHW filter as OHWI is axes:0,2,3,1); None if malformed."""
    if layout == "W":
        return tuple(range(ndim))
    if layout == "WT":
        return (1, 0) if ndim == 2 else None
    if not isinstance(layout, str) or not layout.startswith("axes:") or len(layout) > 64:
        return None
    try:
        axes = tuple(int(a) for a in layout[5:].split(","))
    except ValueError:
        return None
    return axes if sorted(axes) == list(range(ndim)) else None


def _is_slot(s) -> bool:
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    return (isinstance(s, dict) and is_int(s.get("buffer")) and isinstance(s.get("layer"), str)
            and isinstance(s.get("layout"), str) and isinstance(s.get("shape"), list) and len(s["shape"]) <= 8
            and all(is_int(v) for v in s["shape"]))


def _align(n: int) -> int:
    return -(-n // AREA_ALIGN) * AREA_ALIGN


@contextlib.contextmanager
def interpreter_source(path, max_decoded_size: int | None = None):
    """Keyword arguments for an Interpreter, valid inside the block: the path itself, or for a
    decode="load" file the path of its expansion, a temporary file removed when the block ends.

    Both are memory-mapped by the interpreter, so a dense file and an expanded one cost the same
    memory. Only the flatbuffer's tables of the original are read to tell which it is.
    max_decoded_size replaces the caps on the decode area (limits.py).
    """
    with flatbuffer.mapped(path) as data:
        plan = _plan(data, str(path), max_decoded_size)
        if plan is None:
            yield {"model_path": str(path)}
            return
        fd, tmp = tempfile.mkstemp(prefix="vqexport-load-", suffix=".tflite")
        try:
            with os.fdopen(fd, "wb") as f:
                _write(data, plan, f)
        except BaseException:
            os.unlink(tmp)
            raise
    try:
        yield {"model_path": tmp}
    finally:
        os.unlink(tmp)  # the interpreter's mapping of it outlives the name

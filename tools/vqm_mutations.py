"""Seed files and mutators for fuzzing the .vqm reader and the decode="load" loader (tools/fuzz_vqm.py).

The seeds are valid files built here without torch: one small model per method, with raw tensors
of several dtypes and full metadata. The mutators keep the structure where that takes the input
deeper: a field of the header or the table set to an edge value, the metadata JSON edited, and
fix_checksums() recomputes every checksum so the reader gets past them.
"""
from __future__ import annotations

import copy
import json
import random
import struct
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from vqexport.formats.vqm import HEADER, SECTION, write_vqm  # noqa: E402
from vqexport.ir import CompressedModel, CompressedTensor, dense_section  # noqa: E402

EMBED_NAME = "vqexport.vqm"
_PLACEHOLDER = 1 << 40


# --- seed files ------------------------------------------------------------------------------

SETTINGS = [("binary", {}), ("kmeans", {"k": 16}), ("kmeans", {"k": 5, "codebook_dtype": "float16"}),
            ("pq", {"k": 4, "d": 4}), ("pq", {"k": 4, "d": 2, "rows": True}), ("rq", {"k": 4, "stages": 2}),
            ("svd", {"rank": 3})]


def _fit(name: str, w: np.ndarray, method: str, params: dict, seed: int) -> CompressedTensor:
    from vqexport.config import QuantConfig
    from vqexport.methods import registry

    t = registry.get(method).fit(w, QuantConfig(method=method, **params), seed)
    t.name = name
    return t


def seed_models(seed: int = 0) -> list[CompressedModel]:
    """Small models, one per method, each with raw tensors of every common dtype and full metadata."""
    rng = np.random.default_rng(seed)
    models = []
    for method, params in SETTINGS:
        fc1 = _fit("fc1.weight", rng.standard_normal((12, 16)).astype(np.float32), method, params, seed)
        raw = {"conv.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
               "conv.bias": rng.standard_normal(4).astype(np.float32),
               "fc1.bias": rng.standard_normal(12).astype(np.float32),
               "fc2.weight": rng.standard_normal((3, 12)).astype(np.float32),
               "bn.num_batches_tracked": np.array(7, dtype=np.int64),
               "mask": rng.random((2, 3)) < 0.5,
               "half": rng.standard_normal(5).astype(np.float16)}
        tensors = [CompressedTensor(n, "raw", tuple(a.shape), {"raw": dense_section("raw", a)}) for n, a in raw.items()]
        tensors.insert(2, fc1)
        meta = {"format": "vqm", "producer": "vqexport fuzz", "labels": ["a", "b", "c"],
                "source": {"name": "m.pt", "sha256": "0" * 64, "kind": "torchscript", "arch": None},
                "config": {"method": method, "k": params.get("k", 16), "d": params.get("d", 4),
                           "rows": params.get("rows", False), "stages": 2, "rank": 32, "seed": seed,
                           "codebook_dtype": params.get("codebook_dtype", "float32"), "layers": ["*"],
                           "overrides": {"fc*": {"k": 4}}},
                "layers": {"fc1.weight": {"method": method, "shape": [12, 16], "bits_per_weight": fc1.bits_per_weight,
                                          "compression": fc1.compression, "rel_error": 0.1, **params}},
                "skipped": {"fc2.weight": "k=16 is larger than the 3 vectors in each segment"},
                "input": {"shape": [1, 1, 4, 4], "layout": "NCHW", "mean": [0.5], "std": [0.25]}}
        cm = CompressedModel(tensors, meta)
        meta["summary"] = cm.summary()
        models.append(cm)
    two = [_fit("a.weight", rng.standard_normal((8, 8)).astype(np.float32), "kmeans", {"k": 4}, seed),
           _fit("b.weight", rng.standard_normal((8, 6)).astype(np.float32), "svd", {"rank": 2}, seed)]
    models.append(CompressedModel(two, {}))
    models.append(CompressedModel([], {"format": "vqm"}))
    # Gaussian weights: 1-D k-means clusters of unequal size, so the writer Huffman-codes the
    # indices (.vqm 3.0) and the mutations reach the coded section's checks.
    coded = _fit("big.weight", rng.standard_normal((48, 64)).astype(np.float32), "kmeans", {"k": 16}, seed)
    models.append(CompressedModel([coded], {"format": "vqm"}))
    return models


def to_bytes(cm: CompressedModel) -> bytes:
    with tempfile.TemporaryDirectory(prefix="vqexport-fuzz-") as d:
        write_vqm(cm, Path(d) / "m.vqm")
        return (Path(d) / "m.vqm").read_bytes()


def seed_vqms(seed: int = 0) -> list[bytes]:
    return [to_bytes(cm) for cm in seed_models(seed)]


# --- the layout of a .vqm, as far as it can be walked -----------------------------------------

def walk(data: bytes, on_field=None, on_section=None) -> list[str]:
    """Walk header and table without trusting them; returns the tensor names met. on_field(offset,
    fmt) for every table field, on_section(descriptor offset) for every section descriptor."""
    names = []
    if len(data) < HEADER.size:
        return names
    h = HEADER.unpack_from(data)
    n, table_off, table_len = h[4], h[7], h[8]
    end = min(len(data), table_off + table_len - 4)
    pos = table_off

    def take(fmt):
        nonlocal pos
        size = struct.calcsize("<" + fmt)
        if pos + size > end:
            raise EOFError
        if on_field:
            on_field(pos, fmt)
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += size
        return vals

    try:
        for _ in range(min(n, 4096)):
            (nlen,) = take("H")
            names.append(data[pos:pos + nlen].decode("utf-8", "replace"))
            pos += nlen
            _, ndim = take("B")[0], take("B")[0]
            for _ in range(ndim):
                take("I")
            *_, nsec = (take(f) for f in ("I", "I", "B", "B", "I", "B", "B"))
            for _ in range(nsec[0]):
                if pos + SECTION.size > end:
                    raise EOFError
                if on_section:
                    on_section(pos)
                for f in ("B", "B", "B", "B", "I", "I", "I", "I", "Q", "Q", "I"):
                    take(f)
    except EOFError:
        pass
    return names


def fix_checksums(data: bytes, fix_size: bool = True) -> bytes:
    """Recompute every checksum the file's own offsets point at (and file_size), best effort."""
    b = bytearray(data)
    if len(b) < HEADER.size:
        return bytes(b)
    h = list(HEADER.unpack_from(b))
    if fix_size:
        h[9] = len(b)

    def section(pos):
        off, length = struct.unpack_from("<QQ", b, pos + 20)
        if off + length <= len(b):
            struct.pack_into("<I", b, pos + 36, zlib.crc32(bytes(b[off:off + length])))

    walk(bytes(b), on_section=section)
    table_off, table_len = h[7], h[8]
    if table_len >= 4 and table_off + table_len <= len(b):
        end = table_off + table_len - 4
        struct.pack_into("<I", b, end, zlib.crc32(bytes(b[table_off:end])))
    meta_off, meta_len = h[5], h[6]
    if meta_off + meta_len <= len(b):
        h[10] = zlib.crc32(bytes(b[meta_off:meta_off + meta_len]))
    head = HEADER.pack(*h)
    b[:HEADER.size] = head[:60] + struct.pack("<I", zlib.crc32(head[:60]))
    return bytes(b)


# --- mutations -------------------------------------------------------------------------------

_EDGE = {"B": [0, 1, 2, 4, 5, 7, 8, 9, 15, 16, 17, 127, 128, 255],
         "H": [0, 1, 2, 255, 256, 0x7FFF, 0xFFFF],
         "I": [0, 1, 2, 3, 4, 16, 63, 64, 65, 255, 65536, 65537, 2**20, 2**31 - 1, 2**31, 2**32 - 1],
         "Q": [0, 1, 63, 64, 65, 2**31, 2**32, 2**62, 2**63, 2**64 - 1]}
_MAX = {"B": 255, "H": 0xFFFF, "I": 2**32 - 1, "Q": 2**64 - 1}


def _edge(rng: random.Random, fmt: str, current: int, size: int) -> int:
    choice = rng.random()
    if choice < 0.5:
        v = rng.choice(_EDGE[fmt])
    elif choice < 0.7:
        v = current + rng.choice([-64, -2, -1, 1, 2, 64])
    elif choice < 0.85:
        v = current * rng.choice([2, 4, 256, 65536])
    else:
        v = rng.choice([size - 1, size, size + 1, rng.randrange(0, max(1, size))])
    return min(max(v, 0), _MAX[fmt])


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not b:
            break
        i = rng.randrange(len(b))
        b[i] = rng.randrange(256) if rng.random() < 0.5 else b[i] ^ (1 << rng.randrange(8))
    return bytes(b)


def mutate_length(data: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.6 or not data:
        return data[:rng.randrange(len(data) + 1)]
    return data + bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 64, 200])))


def mutate_header(data: bytes, rng: random.Random) -> bytes:
    if len(data) < HEADER.size:
        return mutate_bytes(data, rng)
    fields = [(4, "H"), (6, "H"), (8, "I"), (12, "I"), (16, "Q"), (24, "Q"), (32, "Q"), (40, "Q"), (48, "Q")]
    off, fmt = rng.choice(fields)
    b = bytearray(data)
    (cur,) = struct.unpack_from("<" + fmt, b, off)
    struct.pack_into("<" + fmt, b, off, _edge(rng, fmt, cur, len(data)))
    return bytes(b)


def mutate_table(data: bytes, rng: random.Random) -> bytes:
    fields = []
    walk(data, on_field=lambda pos, fmt: fields.append((pos, fmt)))
    if not fields:
        return mutate_bytes(data, rng)
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        pos, fmt = rng.choice(fields)
        (cur,) = struct.unpack_from("<" + fmt, b, pos)
        struct.pack_into("<" + fmt, b, pos, _edge(rng, fmt, cur, len(data)))
    return bytes(b)


KEYS = ["format", "producer", "source", "config", "layers", "skipped", "labels", "input", "summary", "x"]
SUBKEYS = ["name", "sha256", "kind", "arch", "method", "k", "d", "rows", "stages", "rank", "seed", "layers",
            "overrides", "codebook_dtype", "shape", "bits_per_weight", "compression", "rel_error", "layout",
            "mean", "std", "model_dense_bytes", "layer_compression"]


def random_json(rng: random.Random, names: list[str], depth: int = 0):
    leaves = [None, True, False, 0, -1, 1, 5, 2**31, 2**53 + 1, 10**30, 1.5, -0.0, 1e308, "", "x", "nosuch",
              "\u00e9\u4e2d", "a\nb"] + names
    r = rng.random()
    if depth > 3 or r < 0.6:
        return rng.choice(leaves)
    if r < 0.8:
        return [random_json(rng, names, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS + SUBKEYS + names): random_json(rng, names, depth + 1) for _ in range(rng.randrange(4))}


def _text_mutation(text: bytes, rng: random.Random) -> bytes:
    op = rng.randrange(8)
    if op == 0:
        return b"[" * rng.choice([63, 64, 65, 1000, 100000])
    if op == 1:
        return b'{"a":' + b"[" * rng.choice([62, 63, 64, 200]) + b"]" * 200 + b"}"
    if op == 2:
        return text.replace(b"0.1", b"NaN", 1) if b"0.1" in text else b'{"summary": {"x": Infinity}}'
    if op == 3:
        return b'{"summary": {"x": ' + b"9" * rng.choice([20, 400, 5000]) + b"}}"
    if op == 4:
        return b'{"producer": "\\ud800"}'
    if op == 5:
        return text[:rng.randrange(len(text) + 1)]
    if op == 6:
        return text + b"\xff\xfe"
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice([b"[", b"]", b"{", b"}", b'"', b"\\", b",", b":"]) + text[i:]


def mutate_metadata(data: bytes, rng: random.Random) -> bytes:
    if len(data) < HEADER.size:
        return mutate_bytes(data, rng)
    h = HEADER.unpack_from(data)
    meta_off, meta_len = h[5], h[6]
    if meta_off < HEADER.size or meta_off + meta_len != len(data):
        return mutate_bytes(data, rng)
    text = data[meta_off:]
    names = walk(data)
    if rng.random() < 0.25:
        new = _text_mutation(text, rng)
    else:
        try:
            meta = json.loads(text)
        except (ValueError, RecursionError):  # an earlier mutation's deep or broken JSON
            meta = {}
        op = rng.randrange(5)
        if op == 0 or not isinstance(meta, dict):
            meta = random_json(rng, names)
        elif op == 1:
            meta[rng.choice(KEYS)] = random_json(rng, names)
        elif op == 2 and meta:
            key = rng.choice(sorted(meta))
            if isinstance(meta[key], dict):
                meta[key][rng.choice(SUBKEYS + names)] = random_json(rng, names)
            else:
                del meta[key]
        elif op == 3:
            meta[rng.choice(["skipped", "layers"])] = {rng.choice(names + ["nosuch"]): random_json(rng, names)}
        else:
            spec = meta.setdefault("input", {})
            if isinstance(spec, dict):
                spec[rng.choice(["shape", "mean", "std", "layout"])] = random_json(rng, names)
        new = json.dumps(meta).encode("utf-8", "surrogatepass")
    b = bytearray(data[:meta_off] + new)
    struct.pack_into("<Q", b, 24, len(new))
    return bytes(b)


VQM_MUTATORS = [mutate_bytes, mutate_length, mutate_header, mutate_table, mutate_metadata]


def mutate_vqm(data: bytes, rng: random.Random) -> bytes:
    for _ in range(rng.choice([1, 1, 2, 3, 4])):
        data = rng.choice(VQM_MUTATORS)(data, rng)
        if rng.random() < 0.75:
            data = fix_checksums(data, fix_size=rng.random() < 0.95)
    return data


# --- decode="load" .tflite seeds and mutations -------------------------------------------------

class LoadSeed:
    """A decode="load" file as its parts: the embedded .vqm, the slot list, each slot buffer's size."""

    def __init__(self, vqm: bytes, slots: list[dict], sizes: list[int], offsets: list[int] | None = None):
        self.vqm, self.slots, self.sizes, self.offsets = vqm, slots, sizes, offsets

    @classmethod
    def from_model(cls, cm: CompressedModel) -> LoadSeed:
        part = CompressedModel(cm.compressed, {"format": "vqm", "embedded_in": "tflite"})
        slots, sizes = [], []
        for i, t in enumerate(cm.compressed):
            for layout in ("W", "WT") if i == 0 else ("W",):
                m, n = t.shape
                slots.append({"buffer": 1 + len(sizes), "layer": t.name, "layout": layout,
                              "shape": [m, n] if layout == "W" else [n, m]})
                sizes.append(4 * t.numel)
        return cls(to_bytes(part), slots, sizes)

    def build(self, info: dict | bytes | None = None) -> bytes:
        """The .tflite: buffer 0 empty, the slot buffers, then the two metadata buffers."""
        info = info if info is not None else {"decode": "load", "slots": self.slots, "input": {"shape": [1, 16]}}
        raw = info if isinstance(info, bytes) else json.dumps(info).encode("utf-8", "surrogatepass")
        offsets = self.offsets or [_PLACEHOLDER] * len(self.sizes)
        data = _pack(self.sizes, offsets, raw, self.vqm)
        if self.offsets is None:  # the file's length does not depend on the (fixed-width) offsets
            pos, offsets = -(-len(data) // 64) * 64, []
            for size in self.sizes:
                offsets.append(min(pos, _MAX["Q"]))  # a mutated size can push the next one past u64
                pos = -(-(pos + size) // 64) * 64
            data = _pack(self.sizes, offsets, raw, self.vqm)
        return data


def _pack(sizes, offsets, info: bytes, vqm: bytes) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    model.buffers = [s.BufferT()]
    for size, off in zip(sizes, offsets, strict=True):
        b = s.BufferT()
        b.offset, b.size = off, size
        model.buffers.append(b)
    model.metadata = []
    for name, payload in (("vqexport", info), (EMBED_NAME, vqm)):
        b = s.BufferT()
        b.data = np.frombuffer(payload, dtype=np.uint8)
        model.buffers.append(b)
        md = s.MetadataT()
        md.name, md.buffer = name, len(model.buffers) - 1
        model.metadata.append(md)
    builder = flatbuffers.Builder(1024 + len(info) + len(vqm))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def seed_loads(seed: int = 0) -> list[LoadSeed]:
    return [LoadSeed.from_model(cm) for cm in seed_models(seed) if cm.compressed]


def mutate_load(seed: LoadSeed | bytes, rng: random.Random) -> bytes:
    if isinstance(seed, bytes):  # a real file: edits that keep every length, so the flatbuffer stays valid
        return _mutate_real_load(seed, rng)
    s = LoadSeed(seed.vqm, copy.deepcopy(seed.slots), list(seed.sizes))
    info = None
    names = walk(s.vqm) + ["nosuch"]
    for _ in range(rng.choice([1, 1, 2, 3])):
        op = rng.randrange(7)
        if op == 0:
            s.vqm = mutate_vqm(s.vqm, rng)
        elif op == 1 and s.slots:
            slot = rng.choice(s.slots)
            key = rng.choice(["buffer", "layer", "layout", "shape", "x"])
            shape = slot.get("shape")
            flipped = shape[::-1] if isinstance(shape, list) else [1, 1]
            slot[key] = rng.choice([random_json(rng, names), rng.randrange(-1, len(s.sizes) + 4), "W", "WT",
                                    rng.choice(names), flipped, flipped + [1]])
        elif op == 2 and s.slots:
            rng.choice([s.slots.append, s.slots.remove])(rng.choice(s.slots))
        elif op == 3 and s.sizes:
            i = rng.randrange(len(s.sizes))
            s.sizes[i] = _edge(rng, "Q", s.sizes[i], 4096)
        elif op == 4:
            base = s.build()
            s.offsets = [-(-len(base) // 64) * 64 + rng.choice([0, 1, 64, 128]) * j for j in range(len(s.sizes))]
            s.offsets[rng.randrange(len(s.sizes))] = _edge(rng, "Q", s.offsets[0], len(base))
        elif op == 5:
            info = rng.choice([random_json(rng, names), {"decode": "load", "slots": random_json(rng, names)},
                               b"[" * 100000, {"decode": rng.choice(["once", None, 1]), "slots": s.slots}])
        else:
            return mutate_bytes(s.build(info), rng)
    return s.build(info)


def _mutate_real_load(data: bytes, rng: random.Random) -> bytes:
    op = rng.random()
    at = data.find(b"VQM\x00")
    if op < 0.45 and at >= 0 and at + HEADER.size <= len(data):  # the embedded .vqm, in place
        size = struct.unpack_from("<Q", data, at + 48)[0]
        vqm = data[at:at + size]
        for _ in range(rng.choice([1, 1, 2])):
            vqm = rng.choice([mutate_bytes, mutate_header, mutate_table])(vqm, rng)
            if rng.random() < 0.75:
                vqm = fix_checksums(vqm)
        return data[:at] + vqm + data[at + size:]
    slots = data.find(b'"slots":')
    if op < 0.8 and slots >= 0:  # the slot JSON: a digit or a layout letter, in place
        digits = [i for i in range(slots, min(len(data), slots + 600)) if data[i:i + 1].isdigit()]
        if digits:
            i = rng.choice(digits)
            return data[:i] + rng.choice(b"0123456789").to_bytes(1, "little") + data[i + 1:]
    return mutate_bytes(data, rng) if rng.random() < 0.7 else mutate_length(data, rng)

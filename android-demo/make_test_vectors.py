"""Writes the test vectors the Java tests of android-demo read (run by android-demo/test.sh).

    .venv/bin/python android-demo/make_test_vectors.py OUTDIR

OUTDIR/manifest.json describes everything below it:
  vqm/<case>.vqm         one file per method and index width, written by the Python API; the
                         conv_* cases are .vqm 2.0 (4-D weights, grouped codebooks, method vq);
                         coded_* are .vqm 3.0 (Huffman-coded indices), each with a coded_*_packed
                         twin written plainly from the same compression ("twin" in the manifest)
  vqm/<case>/<i>.bin     each tensor as Python decodes it, raw little-endian bytes of its dtype
  corrupt/<case>.vqm     damaged copies; "kind" is what the Python reader's message maps to
  corrupt/v2_<case>.vqm  2.0 files tampered where only the 2.0 checks catch it
  corrupt/huffman_*.vqm  3.0 files whose Huffman section is damaged (checksums fixed)
  onnx/                  an exported .onnx, inputs and the logits Python onnxruntime gives
  tflite/                an exported .tflite and the "vqexport" metadata Python reads from it
  tflite/big-load.*      a decode="load" file with 64 MiB of decoded weights, and Python's expansion
  tflite/conv-load*      a decode="load" conv net (kmeans, whole model: axes: slots), its expansion,
                         a copy Python accepts (spaces in an axes: layout) and copies it rejects
A part whose exporter is not in the package yet (ImportError/AttributeError) is skipped with a
loud message and "skipped" in the manifest; any other failure fails the script.
"""
from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import huffman_vectors
import numpy as np
import torch

import vqexport
from vqexport import write_vqm
from vqexport.errors import VqmError
from vqexport.formats.vqm import HEADER, SECTION
from vqexport.torch_bridge import decoded_state_dict


def kind_of(message: str) -> str:
    """The Java VqmException.Kind a Python VqmError message stands for (FORMAT.md "Errors")."""
    m = message.lower()
    if "not a .vqm file" in m:
        return "NOT_VQM"
    if "unsupported .vqm version" in m:
        return "VERSION"
    if "checksum mismatch" in m:
        return "CHECKSUM"
    if "truncated" in m:
        return "TRUNCATED"
    if "outside the" in m or "misaligned" in m or "overlap" in m:
        return "BOUNDS"
    return "INVALID"


def tiny_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.BatchNorm1d(64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 24))
    model[1].num_batches_tracked.fill_(7)  # an int64 buffer, stored raw
    return model.eval()


# name, compress() arguments. Index widths: 1, 2, 3, 4, 5, 8, 10 bits.
CASES = [
    ("binary", dict(method="binary")),
    ("kmeans_k2", dict(method="kmeans", k=2)),
    ("kmeans_k4", dict(method="kmeans", k=4)),
    ("kmeans_k5", dict(method="kmeans", k=5)),
    ("kmeans_k16", dict(method="kmeans", k=16)),
    ("kmeans_k16_f16", dict(method="kmeans", k=16, codebook_dtype="float16")),
    ("kmeans_k256", dict(method="kmeans", k=256)),
    ("kmeans_k1000", dict(method="kmeans", k=1000)),
    ("pq_cols_d4_k16", dict(method="pq", k=16, d=4)),
    ("pq_cols_d8_k24", dict(method="pq", k=24, d=8)),
    ("pq_rows_d2_k8", dict(method="pq", k=8, d=2, rows=True)),
    ("pq_rows_d4_k16_f16", dict(method="pq", k=16, d=4, rows=True, codebook_dtype="float16")),
    ("rq_t2_k8", dict(method="rq", k=8, stages=2)),
    ("rq_t3_k20", dict(method="rq", k=20, stages=3)),
    ("svd_r4", dict(method="svd", rank=4)),
    ("svd_r16", dict(method="svd", rank=16)),
]


def conv_model(seed: int) -> torch.nn.Module:
    """A conv weight [8, 4, 3, 3] (m = 8 rows of n = 36) whose BatchNorm is folded into it, so the
    metadata holds the whole-model keys ("folded", per-layer "type", config "types", "min_size")."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10)).eval()


# .vqm 2.0: the conv weight quantized as its 8 x 36 matrix, ungrouped and grouped (--group-size).
CONV_CASES = [
    ("conv_kmeans_k16", dict(method="kmeans", k=16)),
    ("conv_kmeans_k16_g4", dict(method="kmeans", k=16, group_size=4)),
    ("conv_kmeans_k8_g2_f16", dict(method="kmeans", k=8, group_size=2, codebook_dtype="float16")),
    ("conv_binary_g2", dict(method="binary", group_size=2)),
    ("conv_pq_cols_d4_k4_g4", dict(method="pq", k=4, d=4, group_size=4)),
    ("conv_pq_rows_d2_k8", dict(method="pq", k=8, d=2, rows=True)),
    ("conv_vq_k16_d4", dict(method="vq", k=16, d=4)),
    ("conv_vq_k16_d4_g4", dict(method="vq", k=16, d=4, group_size=4)),
    ("conv_vq_k5_d3_g2_f16", dict(method="vq", k=5, d=3, group_size=2, codebook_dtype="float16")),
    ("conv_rq_t2_k4", dict(method="rq", k=4, stages=2)),
    ("conv_svd_r4", dict(method="svd", rank=4)),
    ("linear_vq_k8_d4", dict(method="vq", k=8, d=4, types=("linear",))),
]


def write_vqm_cases(out: Path) -> list[dict]:
    (out / "vqm").mkdir(parents=True, exist_ok=True)
    cases = []
    todo = [(name, kw, tiny_model(i), "auto", None) for i, (name, kw) in enumerate(CASES)]
    todo += [(name, {"types": ("conv",), "min_size": 0, **kw}, conv_model(i), "auto", None)
             for i, (name, kw) in enumerate(CONV_CASES)]
    todo += huffman_vectors.todo()
    for name, kw, model, coding, twin in todo:
        cm = vqexport.compress(model, seed=0, **kw)
        path = out / "vqm" / f"{name}.vqm"
        write_vqm(cm, path, index_coding=coding)
        back = vqexport.read_vqm(path)  # what the Python reader decodes from the file itself
        tdir = out / "vqm" / name
        tdir.mkdir(exist_ok=True)
        tensors = []
        decoded = decoded_state_dict(back)
        for j, t in enumerate(back.tensors):
            arr = decoded[t.name].numpy()
            # astype(copy=True) keeps a 0-d shape (np.ascontiguousarray would make it 1-d)
            le = arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=True)
            (tdir / f"{j}.bin").write_bytes(le.tobytes())
            tensors.append({"name": t.name, "method": t.method, "dtype": str(arr.dtype),
                            "coded": bool(t.method != "raw" and "indices" in t.sections
                                          and t.sections["indices"].coded_nbytes),
                            "shape": list(arr.shape), "bits": t.bits, "k": t.k, "groups": t.groups,
                            "file": f"vqm/{name}/{j}.bin",
                            # svd is a float32 matrix product; BLAS sums in its own order.
                            "exact": t.method != "svd"})
        major, minor = HEADER.unpack_from(path.read_bytes())[1:3]
        if name.startswith("coded_") and twin.endswith("_packed") \
                and not any(x["coded"] for x in tensors):
            raise SystemExit(f"make_test_vectors: {name} has no Huffman-coded tensor")
        cases.append({"name": name, "file": f"vqm/{name}.vqm", "args": {**kw, "index_coding": coding},
                      "twin": twin, "tensors": tensors,
                      "version": [major, minor], "metadata_input": back.metadata.get("input")})
    return cases


# ------------------------------------------------------------------ corrupt variants

def table_records(data: bytes):
    """(tensor name, record start, [(role, descriptor position)]) for each record; FORMAT.md layout."""
    h = HEADER.unpack_from(data)
    n, table_off = h[4], h[7]
    pos = table_off
    out = []
    for _ in range(n):
        start = pos
        (nlen,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = data[pos:pos + nlen].decode()
        pos += nlen
        _method, ndim = struct.unpack_from("<BB", data, pos)
        pos += 2 + 4 * ndim
        nsec = struct.unpack_from("<IIBBIBB", data, pos)[-1]
        pos += struct.calcsize("<IIBBIBB")
        secs = []
        for _ in range(nsec):
            secs.append((SECTION.unpack_from(data, pos)[0], pos))
            pos += SECTION.size
        out.append((name, start, secs))
    return out


def refix_table(data: bytearray) -> None:
    h = HEADER.unpack_from(data)
    off, length = h[7], h[8]
    struct.pack_into("<I", data, off + length - 4, zlib.crc32(bytes(data[off:off + length - 4])))


def refix_header(data: bytearray) -> None:
    struct.pack_into("<I", data, 60, zlib.crc32(bytes(data[:60])))


def corrupt_variants(src: bytes) -> dict[str, bytes]:
    """Damaged copies of a valid kmeans k=5 file (3-bit indices, so k < 2^bits)."""
    v: dict[str, bytes] = {}
    h = HEADER.unpack_from(src)
    meta_off, meta_len, table_off = h[5], h[6], h[7]
    v["truncated_end"] = src[:-10]
    v["truncated_to_header"] = src[:64]
    v["truncated_tiny"] = src[:40]
    v["empty"] = b""
    b = bytearray(src); b[0] = ord("X"); v["bad_magic"] = bytes(b)
    b = bytearray(src); struct.pack_into("<H", b, 4, 4); refix_header(b); v["bad_version_major"] = bytes(b)
    b = bytearray(src); struct.pack_into("<H", b, 4, 4); v["bad_version_major_stale_crc"] = bytes(b)
    b = bytearray(src); b[12] ^= 0x01; v["bad_header_crc"] = bytes(b)
    b = bytearray(src); b[meta_off + meta_len // 2] ^= 0x20; v["bad_metadata_crc"] = bytes(b)
    b = bytearray(src); b[table_off + 3] ^= 0x01; v["bad_table_crc"] = bytes(b)
    b = bytearray(src) + bytes(64); v["padded"] = bytes(b)
    b = bytearray(src); struct.pack_into("<Q", b, 24, len(src)); refix_header(b); v["metadata_outside"] = bytes(b)
    b = bytearray(src); struct.pack_into("<Q", b, 40, len(src)); refix_header(b); v["table_outside"] = bytes(b)
    for name, start, secs in table_records(src):
        safe = name.replace(".", "_")
        for role, dpos in secs:
            _r, _dt, _nd, _z, *_dims, off, length, _crc = SECTION.unpack_from(src, dpos)
            if length:
                b = bytearray(src); b[off + length - 1] ^= 0x40
                v[f"bad_section_crc_{safe}_{role}"] = bytes(b)
        # a section that is misaligned / outside the file, with the table checksum fixed
        role, dpos = secs[0]
        b = bytearray(src); struct.pack_into("<Q", b, dpos + 20, SECTION.unpack_from(src, dpos)[8] + 4)
        refix_table(b); v[f"misaligned_{safe}"] = bytes(b)
        b = bytearray(src); struct.pack_into("<Q", b, dpos + 20, (len(src) + 64) // 64 * 64)
        refix_table(b); v[f"section_outside_{safe}"] = bytes(b)
        b = bytearray(src); struct.pack_into("<Q", b, dpos + 28, SECTION.unpack_from(src, dpos)[9] + 1)
        refix_table(b); v[f"length_vs_dims_{safe}"] = bytes(b)
        # an unknown method code, and unknown role / dtype codes
        nlen = struct.unpack_from("<H", src, start)[0]
        b = bytearray(src); b[start + 2 + nlen] = 9; refix_table(b); v[f"bad_method_{safe}"] = bytes(b)
        b = bytearray(src); b[dpos] = 7; refix_table(b); v[f"bad_role_{safe}"] = bytes(b)
        b = bytearray(src); b[dpos + 1] = 12; refix_table(b); v[f"bad_dtype_{safe}"] = bytes(b)
    # bits 17, and a packed index >= k (section crc fixed so only the index check can fail)
    for _name, start, secs in table_records(src):
        roles = dict(secs)
        if 2 not in roles:
            continue
        nlen = struct.unpack_from("<H", src, start)[0]
        ndim = src[start + 2 + nlen + 1]
        fixed = start + 2 + nlen + 2 + 4 * ndim  # k, d, rows, stages, rank, bits, nsec
        bits_pos = fixed + 4 + 4 + 1 + 1 + 4
        b = bytearray(src); b[bits_pos] = 17; refix_table(b); v["bits_17"] = bytes(b)
        b = bytearray(src); b[bits_pos] = 0; refix_table(b); v["bits_0"] = bytes(b)
        dpos = roles[2]
        off, length = SECTION.unpack_from(src, dpos)[8:10]
        b = bytearray(src); b[off] |= 0x07  # first 3-bit index := 7 >= k = 5
        struct.pack_into("<I", b, dpos + 36, zlib.crc32(bytes(b[off:off + length])))
        refix_table(b); v["index_ge_k"] = bytes(b)
        break
    return v


def record_fields(data: bytes, index: int = 0) -> dict:
    """Byte positions of one record's fields (FORMAT.md "Tensor table"), to tamper with them."""
    name, start, secs = table_records(data)[index]
    nlen = struct.unpack_from("<H", data, start)[0]
    method_pos = start + 2 + nlen
    ndim = data[method_pos + 1]
    fixed = method_pos + 2 + 4 * ndim
    return {"name": name, "method": method_pos, "ndim": method_pos + 1, "shape": method_pos + 2, "k": fixed,
            "d": fixed + 4, "rows": fixed + 8, "stages": fixed + 9, "rank": fixed + 10, "bits": fixed + 14,
            "secs": dict(secs)}


def compressed_record(data: bytes) -> dict:
    for i in range(len(table_records(data))):
        f = record_fields(data, i)
        if data[f["method"]]:
            return f
    raise SystemExit("make_test_vectors: no compressed tensor to tamper with")


def v2_variants(vqm: Path) -> dict[str, bytes]:
    """2.0 files tampered so that only what 2.0 added (N-D, groups, vq, the version rule) can fail."""
    v: dict[str, bytes] = {}

    def tamper(case: str, fn) -> bytes:
        b = bytearray((vqm / f"{case}.vqm").read_bytes())
        fn(b, compressed_record(bytes(b)))
        refix_table(b)
        refix_header(b)
        return bytes(b)

    # vq with d = 5, which does not divide n = 36 (the codebook dims then disagree too: d is checked first)
    v["v2_vq_d_not_dividing_n"] = tamper("conv_vq_k16_d4", lambda b, f: struct.pack_into("<I", b, f["d"], 5))
    # m = 9 rows: 2 codebook groups (kmeans, vq) or 4 (binary) do not divide them
    for case in ("conv_kmeans_k16_g4", "conv_vq_k16_d4_g4", "conv_binary_g2"):
        v[f"v2_groups_not_dividing_m_{case}"] = tamper(case, lambda b, f: struct.pack_into("<I", b, f["shape"], 9))
    # pq grouped by rows: only by columns has groups
    v["v2_pq_grouped_by_rows"] = tamper("conv_pq_cols_d4_k4_g4", lambda b, f: b.__setitem__(f["rows"], 1))

    def one_group(b, f):  # kmeans codebook [16] described as [1, 16]: same bytes, a grouped shape of 1 group
        dpos = f["secs"][1]
        b[dpos + 2] = 2
        struct.pack_into("<II", b, dpos + 4, 1, 16)
    v["v2_kmeans_codebook_one_group"] = tamper("conv_kmeans_k16", one_group)

    def vq_2d_codebook(b, f):  # vq's codebook is [groups, k, d] always, never [k, d]
        dpos = f["secs"][1]
        b[dpos + 2] = 2
        struct.pack_into("<III", b, dpos + 4, 16, 4, 0)
    v["v2_vq_codebook_without_groups"] = tamper("conv_vq_k16_d4", vq_2d_codebook)
    # a vq table field it does not read
    v["v2_vq_stages_set"] = tamper("conv_vq_k16_d4", lambda b, f: b.__setitem__(f["stages"], 1))
    # 4-D rq and svd with m and n checked: rank 9 > min(8, 36) = 8
    v["v2_svd_rank_over_m"] = tamper("conv_svd_r4", lambda b, f: struct.pack_into("<I", b, f["rank"], 9))

    def version1(case):
        b = bytearray((vqm / f"{case}.vqm").read_bytes())
        struct.pack_into("<H", b, 4, 1)
        refix_header(b)
        return bytes(b)
    # version 1 holds only 2-D, one-codebook tensors of methods 1..5
    v["v1_with_4d_kmeans"] = version1("conv_kmeans_k16")
    v["v1_with_grouped_codebook"] = version1("conv_kmeans_k16_g4")
    v["v1_with_2d_vq"] = version1("linear_vq_k8_d4")
    return v


def write_corrupt(out: Path) -> list[dict]:
    (out / "corrupt").mkdir(parents=True, exist_ok=True)
    src = (out / "vqm" / "kmeans_k5.vqm").read_bytes()
    rows = []
    coded = (out / "vqm" / "coded_kmeans_k16.vqm").read_bytes()
    variants = {**corrupt_variants(src), **v2_variants(out / "vqm"), **huffman_vectors.damaged(coded, 16)}
    for name, data in sorted(variants.items()):
        path = out / "corrupt" / f"{name}.vqm"
        path.write_bytes(data)
        try:
            vqexport.read_vqm(path)
        except VqmError as e:
            rows.append({"name": name, "file": f"corrupt/{name}.vqm", "kind": kind_of(str(e)), "python": str(e)})
            continue
        raise SystemExit(f"make_test_vectors: the Python reader ACCEPTS corrupt variant {name!r}; fix vqm.py")
    return rows


# ------------------------------------------------------------------ ONNX / TFLite

def mnist_net() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 26 * 26, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)).eval()


def optional(part: str, fn, out: Path):
    try:
        return fn(out)
    except (ImportError, AttributeError, NotImplementedError) as e:
        print("!" * 78, file=sys.stderr)
        print(f"!!! make_test_vectors: {part} SKIPPED: the package lacks it yet ({e.__class__.__name__}: {e})",
              file=sys.stderr)
        print("!" * 78, file=sys.stderr)
        return {"skipped": f"{e.__class__.__name__}: {e}"}


def write_onnx(out: Path) -> dict:
    import onnxruntime as ort

    d = out / "onnx"
    d.mkdir(parents=True, exist_ok=True)
    net = mnist_net()
    cm = vqexport.compress(net, method="kmeans", k=16, seed=0)
    cm.metadata["input"] = {"shape": [1, 1, 28, 28], "layout": "NCHW", "mean": [0.1307], "std": [0.3081]}
    vqexport.to_onnx(cm, d / "model.onnx", model=net)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 1, 28, 28)).astype("<f4")
    sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    logits = np.stack([sess.run(None, {name: xi})[0] for xi in x]).astype("<f4")
    (d / "inputs.bin").write_bytes(x.tobytes())
    (d / "logits.bin").write_bytes(logits.tobytes())
    props = sess.get_modelmeta().custom_metadata_map
    return {"model": "onnx/model.onnx", "inputs": "onnx/inputs.bin", "logits": "onnx/logits.bin",
            "count": int(x.shape[0]), "input_shape": [1, 1, 28, 28], "outputs": int(logits.shape[-1]),
            "onnxruntime": ort.__version__, "metadata_props": dict(props)}


def write_tflite(out: Path) -> dict:
    from vqexport.formats.tflite import flatbuffer as tflite_rewrite

    d = out / "tflite"
    d.mkdir(parents=True, exist_ok=True)
    net = mnist_net()
    cm = vqexport.compress(net, method="kmeans", k=16, seed=0)
    cm.metadata["input"] = {"shape": [1, 1, 28, 28], "layout": "NCHW", "mean": [0.1307], "std": [0.3081]}
    vqexport.to_tflite(cm, d / "model.tflite", model=net)
    raw = tflite_rewrite.read_metadata(d / "model.tflite", tflite_rewrite.METADATA_NAME)
    return {"model": "tflite/model.tflite", "metadata_json": raw.decode("utf-8") if raw else None,
            **write_tflite_load(d, vqexport.compress(net, method="pq", k=16, d=4, seed=0), net)}


def write_tflite_load(d: Path, cm, net) -> dict:
    """decode="load": the file, Python's expansion of it (the reference), and a tampered copy."""
    from vqexport.formats.tflite import external as tflite_external
    from vqexport.formats.tflite import flatbuffer as tflite_rewrite

    cm.metadata["input"] = {"shape": [1, 1, 28, 28], "layout": "NCHW", "mean": [0.1307], "std": [0.3081]}
    vqexport.to_tflite(cm, d / "load.tflite", model=net, decode="load")
    data = (d / "load.tflite").read_bytes()
    (d / "load.expanded").write_bytes(tflite_external.expand(data))
    model = tflite_rewrite.read_model(data)
    meta = json.loads(tflite_rewrite.read_metadata(data, tflite_rewrite.METADATA_NAME))
    slots = [[s["layer"], model.buffers[s["buffer"]].offset, 4 * cm[s["layer"]].numel] for s in meta["slots"]]
    ed = tflite_rewrite.Editor(model)
    ed.set_metadata(tflite_rewrite.METADATA_NAME, json.dumps({**meta, "slots": meta["slots"] * 2}).encode())
    (d / "load-dup-slot.tflite").write_bytes(tflite_rewrite.serialize(model))  # would double the area
    ed.set_metadata(tflite_rewrite.METADATA_NAME, json.dumps(meta).encode())
    model.buffers[meta["slots"][0]["buffer"]].offset += 1 << 30  # would be a 1 GiB allocation if trusted
    (d / "load-bad-offset.tflite").write_bytes(tflite_rewrite.serialize(model))
    return {"load_model": "tflite/load.tflite", "load_expanded": "tflite/load.expanded",
            "load_slots": slots, "load_bad_offset": "tflite/load-bad-offset.tflite",
            "load_dup_slot": "tflite/load-dup-slot.tflite"}


def write_tflite_big(out: Path) -> dict:
    """A decode="load" file whose decoded weights (64 MiB) are larger than the heap the Java test
    gives its loader (-Xmx32m), and Python's expansion of it: issue 13 item 4."""
    from vqexport.formats.tflite import external as tflite_external

    d = out / "tflite"
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(64, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 4096), torch.nn.ReLU(),
                              torch.nn.Linear(4096, 10)).eval()
    cm = vqexport.compress(net, method="binary", seed=0)  # the cheapest to compress; decodes exactly
    vqexport.to_tflite(cm, d / "big-load.tflite", model=net, decode="load", input_shape=(1, 64))
    data = (d / "big-load.tflite").read_bytes()
    (d / "big-load.expanded").write_bytes(tflite_external.expand(data))
    return {"model": "tflite/big-load.tflite", "expanded": "tflite/big-load.expanded",
            "decoded_bytes": 4 * sum(t.numel for t in cm.compressed)}


def conv_net() -> torch.nn.Module:
    """Two convs (their OIHW filters sit in the .tflite as OHWI: axes:0,2,3,1 slots) and a linear."""
    torch.manual_seed(5)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, stride=2),
                               torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 12 * 12, 10)).eval()


def write_tflite_conv_load(out: Path) -> dict:
    """decode="load" on a whole model (kmeans on every conv and linear), Python's expansion, a copy
    Python also accepts (an axes: layout written with spaces, as int() reads it), and copies whose
    slots Python refuses, with Python's message."""
    from vqexport.errors import VqexportError
    from vqexport.formats.tflite import external as tflite_external
    from vqexport.formats.tflite import flatbuffer as tflite_rewrite

    d = out / "tflite"
    d.mkdir(parents=True, exist_ok=True)
    net = conv_net()
    cm = vqexport.compress(net, method="kmeans", k=16, seed=0, min_size=0)
    cm.metadata["input"] = {"shape": [1, 1, 28, 28], "layout": "NCHW", "mean": [0.1307], "std": [0.3081]}
    vqexport.to_tflite(cm, d / "conv-load.tflite", model=net, decode="load")
    data = (d / "conv-load.tflite").read_bytes()
    (d / "conv-load.expanded").write_bytes(tflite_external.expand(data))
    meta = json.loads(tflite_rewrite.read_metadata(data, tflite_rewrite.METADATA_NAME))
    layouts = sorted({s["layout"] for s in meta["slots"]})
    if not any(lay.startswith("axes:") for lay in layouts):
        raise SystemExit(f"make_test_vectors: the conv net's decode='load' file has no axes: slot ({layouts})")
    axes_slot = next(i for i, s in enumerate(meta["slots"]) if s["layout"].startswith("axes:"))
    if meta["slots"][axes_slot]["shape"] == list(cm[meta["slots"][axes_slot]["layer"]].shape):
        raise SystemExit("make_test_vectors: the axes: slot has its weight's own shape; nothing to tamper with")

    def variant(fname: str, change) -> bytes:
        model = tflite_rewrite.read_model(data)
        m = json.loads(json.dumps(meta))
        change(m["slots"][axes_slot])
        tflite_rewrite.Editor(model).set_metadata(tflite_rewrite.METADATA_NAME, json.dumps(m).encode())
        b = tflite_rewrite.serialize(model)
        (d / fname).write_bytes(b)
        return b

    spaced = variant("conv-load-spaced.tflite",
                     lambda s: s.update(layout="axes: " + " , ".join(s["layout"][5:].split(","))))
    (d / "conv-load-spaced.expanded").write_bytes(tflite_external.expand(spaced))
    rejected = []
    bad = {
        "not_a_permutation": lambda s: s.update(layout="axes:0,2,2,1"),
        "too_few_axes": lambda s: s.update(layout="axes:0,2,3"),
        "axis_out_of_range": lambda s: s.update(layout="axes:0,2,4,1"),
        "empty_axis": lambda s: s.update(layout="axes:0,2,3,1,"),
        "transpose_of_4d": lambda s: s.update(layout="WT"),
        "w_with_ohwi_shape": lambda s: s.update(layout="W"),
        "shape_not_permuted": lambda s: s.update(shape=list(cm[s["layer"]].shape)),  # the weight's own shape
        "axes_letters": lambda s: s.update(layout="axes:0,b,3,1"),
    }
    for why, change in bad.items():
        fname = f"conv-load-bad-{why}.tflite"
        b = variant(fname, change)
        try:
            tflite_external.expand(b, fname)
        except VqexportError as e:
            rejected.append({"name": why, "file": f"tflite/{fname}", "python": str(e)})
            continue
        raise SystemExit(f"make_test_vectors: Python ACCEPTS the tampered decode='load' file {why!r}")
    return {"model": "tflite/conv-load.tflite", "expanded": "tflite/conv-load.expanded", "layouts": layouts,
            "spaced": "tflite/conv-load-spaced.tflite", "spaced_expanded": "tflite/conv-load-spaced.expanded",
            "rejected": rejected}


# Layout strings for slot_axes, Python's int() quirks included (spaces, signs, underscores, digits
# of other scripts), with the ranks they are tried at.
SLOT_LAYOUTS = ["W", "WT", "axes:0,2,3,1", "axes:1,0", "axes:0,1", "axes: 0, 2 ,3,1 ", "axes:+0,2,3,1",
                "axes:-0,2,3,1", "axes:-1,2,3,1", "axes:0_0,2,3,1", "axes:0__0,2,3,1", "axes:_0,2,3,1",
                "axes:0_,2,3,1", "axes:0,2,3,1,", "axes:,0,2,3,1", "axes:", "axes:0", "axes:0,2,3", "axes:0,2,2,1",
                "axes:0,2,4,1", "axes:0;2;3;1", "axes:0,2,3,1x", "axes:\u0660,2,3,1", "axes:\uff10,2,3,1",
                "axes:\u00a00,2,3,1", "axes:\t0\n,2,3,1", "axes:00,2,3,1", "axes:0,2,3,01", "AXES:0,2,3,1", "w", "",
                "axes:0,2,3,1" + " " * 60, "axes:3,2,1,0,4,5,6,7", "axes:99999999999999999999999,1"]


def write_slot_axes() -> list:
    from vqexport.formats.tflite.external import slot_axes

    out = []
    for layout in SLOT_LAYOUTS:
        for ndim in (1, 2, 3, 4, 8):
            axes = slot_axes(layout, ndim)
            out.append([layout, ndim, None if axes is None else list(axes)])
    return out


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"vqm": write_vqm_cases(out)}
    manifest["corrupt"] = write_corrupt(out)
    manifest["onnx"] = optional("ONNX export (vqexport.to_onnx)", write_onnx, out)
    manifest["tflite"] = optional("TFLite export (vqexport.to_tflite)", write_tflite, out)
    manifest["tflite_big"] = optional("TFLite export (vqexport.to_tflite)", write_tflite_big, out)
    manifest["slot_axes"] = optional("decode='load' slot layouts", lambda _out: write_slot_axes(), out)
    manifest["tflite_conv_load"] = optional("TFLite export (vqexport.to_tflite)", write_tflite_conv_load, out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    n_t = sum(len(c["tensors"]) for c in manifest["vqm"])
    print(f"make_test_vectors: {len(manifest['vqm'])} .vqm files ({n_t} tensors), "
          f"{len(manifest['corrupt'])} corrupt variants, onnx: {'skipped' not in manifest['onnx']}, "
          f"tflite: {'skipped' not in manifest['tflite']} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The .vqm writer and reader: a matched pair that follows docs/FORMAT.md exactly."""
from __future__ import annotations

import itertools
import json
import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from .. import bitpack
from ..errors import ConfigError, VqmError
from ..ir import DTYPES, ITEMSIZE, ROLES, CompressedModel, CompressedTensor, Section, packed_section
from ..methods import registry
from ..util.fileio import atomic_path
from . import huffman
from .limits import loads_untrusted, one_line, over_cap_message
from .vqm_meta import check_metadata, check_names

MAGIC = b"VQM\x00"
VERSION = (3, 0)  # what this reader reads up to; a file is written at the lowest version that holds it
V1 = (1, 0)  # 2-D compressed tensors, one codebook, methods 1..5: what every file was before 2.0
V2 = (2, 0)  # N-D weights, grouped codebooks, method vq
V3 = (3, 0)  # entropy-coded (canonical Huffman) index sections
# Section dtypes as the file codes them: the IR's, plus the one only a file holds (the reader
# decodes it to a packed section, so everything past the reader sees plain packed indices).
FILE_DTYPES = (*DTYPES, "huffman")
HUFFMAN = FILE_DTYPES.index("huffman")
INDEX_CODINGS = ("auto", "packed")  # auto: Huffman for each index section where that is smaller
ALIGN = 64
HEADER = struct.Struct("<4sHHIIQQQQQII")  # 64 bytes; see FORMAT.md "Header"
SECTION = struct.Struct("<BBBB4IQQI")  # 40 bytes
assert HEADER.size == 64 and SECTION.size == 40


class VqmWriter:
    """Streams tensors into a .vqm: payloads as they come, then the table and the metadata.

    Used as a context manager; the file appears under its name only when close() succeeds.
    """

    def __init__(self, path, index_coding: str = "auto"):
        if index_coding not in INDEX_CODINGS:
            raise ConfigError(f"index coding {index_coding!r}; choose one of {', '.join(INDEX_CODINGS)}")
        self.index_coding = index_coding
        self.path = Path(path)
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._f = open(self._tmp, "wb")
        self._f.write(bytes(HEADER.size))
        self._records: list[bytes] = []
        self._version = V1

    def add(self, t: CompressedTensor) -> None:
        if needs_v2(t):
            self._version = max(self._version, V2)
        descs = []
        for role, sec in t.sections.items():
            self._pad()
            offset = self._f.tell()
            payload = sec.tobytes()
            if len(payload) != sec.nbytes:
                raise ValueError(f"{t.name}/{role}: payload is {len(payload)} bytes, expected {sec.nbytes}")
            dtype = DTYPES.index(sec.dtype)
            coded = coded_indices(t, sec, self.index_coding) if role == "indices" else None
            if coded is not None:
                payload, dtype, self._version = coded, HUFFMAN, V3
            if role in ("codebook", "factor_a", "factor_b") and not np.isfinite(sec.data).all():
                # Readers reject such a file, so it is never written.
                raise ConfigError(f"layer {t.name}: its {role} holds NaN or Inf; are the layer's weights finite?")
            self._f.write(payload)
            dims = list(sec.shape) + [0] * (4 - len(sec.shape))
            descs.append(SECTION.pack(ROLES.index(role), dtype, len(sec.shape), 0,
                                      *dims, offset, len(payload), zlib.crc32(payload)))
        name = t.name.encode("utf-8")
        rec = struct.pack("<H", len(name)) + name
        rec += struct.pack(f"<BB{len(t.shape)}I", registry.CODE_OF[t.method], len(t.shape), *t.shape)
        rec += struct.pack("<IIBBIBB", t.k, t.d, int(t.rows), t.stages, t.rank, t.bits, len(descs))
        self._records.append(rec + b"".join(descs))

    def close(self, metadata: dict) -> None:
        try:
            table = b"".join(self._records)
            table += struct.pack("<I", zlib.crc32(table))
            table_offset = self._f.tell()
            self._f.write(table)
            try:
                meta = json.dumps(metadata, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
            except ValueError:
                raise ConfigError("the metadata holds NaN or Infinity, which JSON cannot carry; "
                                  "are the model's weights finite?") from None
            meta_offset = self._f.tell()
            self._f.write(meta)
            size = self._f.tell()
            head = HEADER.pack(MAGIC, *self._version, HEADER.size, len(self._records), meta_offset, len(meta),
                               table_offset, len(table), size, zlib.crc32(meta), 0)
            self._f.seek(0)
            self._f.write(head[:60] + struct.pack("<I", zlib.crc32(head[:60])))
            self._f.close()
        except BaseException as e:
            self.abort(e)
            raise
        self._atomic.__exit__(None, None, None)

    def abort(self, exc: BaseException | None = None) -> None:
        if not self._f.closed:
            self._f.close()
        self._atomic.__exit__(type(exc), exc, None)

    def _pad(self) -> None:
        pos = self._f.tell()
        self._f.write(bytes(-pos % ALIGN))

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if et is not None:
            self.abort(e)


def needs_v2(t: CompressedTensor) -> bool:
    """Whether a tensor uses what version 2.0 added: N-D weights, grouped codebooks, method vq."""
    return t.method != registry.RAW and (len(t.shape) != 2 or t.groups != 1 or registry.CODE_OF[t.method] > 5)


def coded_indices(t: CompressedTensor, sec: Section, index_coding: str = "auto") -> bytes | None:
    """The Huffman payload the writer stores for this index section: where it is smaller than the
    packed bytes, with index_coding "auto"; else None (stored packed)."""
    if index_coding != "auto" or sec.dtype != "packed" or sec.count == 0:
        return None
    return huffman.encode_packed(sec.data, sec.count, sec.bits, t.k, smaller_than=sec.nbytes)


def stored_bits(model: CompressedModel, index_coding: str = "auto") -> int:
    """The payload bits a .vqm written with this index coding holds: ideal_bits() with each index
    section the writer codes counted at its coded size. The file is these, rounded up to bytes,
    plus alignment, the section table and the metadata."""
    total = 0
    for t in model.tensors:
        for role, sec in t.sections.items():
            coded = coded_indices_nbytes(t, sec, index_coding) if role == "indices" else None
            total += 8 * coded if coded is not None else sec.ideal_bits
    return total


def coded_indices_nbytes(t: CompressedTensor, sec: Section, index_coding: str = "auto") -> int | None:
    """len(coded_indices(...)), or None where they are stored packed; sized without coding."""
    if index_coding != "auto" or sec.dtype != "packed" or sec.count == 0:
        return None
    n = huffman.packed_coded_nbytes(sec.data, sec.count, sec.bits, t.k)
    return n if n < sec.nbytes else None


def write_vqm(model: CompressedModel, path, index_coding: str = "auto") -> None:
    """index_coding "auto" stores each index section Huffman-coded where that is smaller (the file
    is then version 3.0), "packed" always plain (the file stays 1.0 or 2.0, as older readers read)."""
    w = VqmWriter(path, index_coding)
    try:
        for t in model.tensors:
            w.add(t)
    except BaseException as e:
        w.abort(e)
        raise
    w.close(model.metadata)


def read_vqm(path, max_decoded_size: int | None = None) -> CompressedModel:
    """Read and check a .vqm file; max_decoded_size replaces the default caps (see limits.py)."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the check below then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise VqmError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VqmError(f"{path}: is a folder, not a .vqm file") from None
    except OSError as e:
        raise VqmError(f"{path}: cannot be read ({e.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # a folder; or /dev/zero, which would never end
        os.close(fd)
        raise VqmError(f"{path}: is a folder, not a .vqm file" if stat.S_ISDIR(mode) else f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    return parse_vqm(data, str(path), max_decoded_size)


def parse_vqm(data: bytes, name: str = "<bytes>", max_decoded_size: int | None = None) -> CompressedModel:
    """Check every field of `data` against docs/FORMAT.md, and its decoded size against the caps,
    before anything is decoded. Any failure is a one-line VqmError naming `name`."""
    def fail(msg):
        raise VqmError(one_line(f"{name}: {msg}"))

    size = len(data)
    if size < HEADER.size or data[:4] != MAGIC:
        fail("not a .vqm file (bad magic)")
    (_, major, minor, hsize, n_tensors, meta_off, meta_len, table_off, table_len, file_size,
     meta_crc, head_crc) = HEADER.unpack_from(data)
    if major not in (V1[0], V2[0], V3[0]):
        fail(f"unsupported .vqm version {major}.{minor} (this reader reads {V1[0]}.x to {VERSION[0]}.x)")
    if zlib.crc32(data[:60]) != head_crc:
        fail("checksum mismatch in header")
    if file_size != size:
        fail(f"truncated or padded: header says {file_size} bytes, file has {size}")
    if hsize != HEADER.size:
        fail(f"header size {hsize}, expected {HEADER.size}")
    for what, off, length in (("metadata", meta_off, meta_len), ("tensor table", table_off, table_len)):
        if off < HEADER.size or off + length > size:
            fail(f"{what} at {off}+{length} lies outside the {size}-byte file")
    meta_bytes = data[meta_off:meta_off + meta_len]
    if zlib.crc32(meta_bytes) != meta_crc:
        fail("checksum mismatch in metadata")
    try:
        metadata = loads_untrusted(meta_bytes)
    except ValueError as e:
        fail(str(e))
    check_metadata(metadata, fail)
    if table_len < 4:
        fail("tensor table too short")
    table = data[table_off:table_off + table_len - 4]
    if zlib.crc32(table) != struct.unpack_from("<I", data, table_off + table_len - 4)[0]:
        fail("checksum mismatch in tensor table")
    tensors, names = [], set()
    pos = 0
    regions = [(meta_off, meta_len, "metadata"), (table_off, table_len, "tensor table")]
    budget = _Budget(size, max_decoded_size, fail)
    for _ in range(n_tensors):
        t, pos = _read_record(table, pos, data, fail, regions, budget, major)
        if major == V1[0] and needs_v2(t):
            fail(f"{t.name}: a version 1 file holds only 2-D, one-codebook tensors of methods 1 to 5")
        if t.name in names:
            fail(f"two tensors named {t.name}")
        names.add(t.name)
        tensors.append(t)
    if pos != len(table):
        fail(f"tensor table has {len(table) - pos} bytes after its {n_tensors} records")
    _check_overlaps(regions, fail)
    _check_gaps(data, regions, fail)
    check_names(metadata, tensors, fail)
    return CompressedModel(tensors=tensors, metadata=metadata)


class _Budget:
    """The decoded float32 bytes the file declares so far, against the cap for its size."""

    def __init__(self, file_size: int, max_decoded: int | None, fail):
        self.file_size, self.max_decoded, self.fail, self.total = file_size, max_decoded, fail, 0

    def add(self, tname: str, numel: int) -> None:
        self.total += 4 * numel  # every tensor counts as float32, as the Java reader decodes it
        msg = over_cap_message("the file declares", self.total, self.file_size, self.max_decoded)
        if msg:
            self.fail(f"{msg} (at tensor {tname})")


def _check_overlaps(regions, fail) -> None:
    """FORMAT.md: no two regions share a byte (a crafted file could alias one payload as two)."""
    spans = sorted((off, off + length, what) for off, length, what in regions if length)
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        if start < end:
            fail(f"{first} and {second} overlap at byte {start}")


def _check_gaps(data: bytes, regions, fail) -> None:
    """FORMAT.md: the bytes between regions (alignment padding) are zero."""
    pos = HEADER.size
    for off, end in sorted((off, off + length) for off, length, _ in regions if length) + [(len(data), len(data))]:
        gap = data[pos:off]
        if gap.count(0) != len(gap):
            fail(f"bytes {pos}..{off - 1} between regions are not zero padding")
        pos = max(pos, end)


TABLE_FIELDS = ("k", "d", "rows", "stages", "rank", "bits")  # FORMAT.md "Tensor table"; 0 where unused


def _read_record(table: bytes, pos: int, data: bytes, fail, regions: list, budget: _Budget, major: int):
    def take(fmt):
        nonlocal pos
        s = struct.calcsize("<" + fmt)
        if pos + s > len(table):
            fail("tensor table ends inside a record")
        vals = struct.unpack_from("<" + fmt, table, pos)
        pos += s
        return vals

    (nlen,) = take("H")
    if pos + nlen > len(table):
        fail("tensor table ends inside a name")
    try:
        tname = table[pos:pos + nlen].decode("utf-8")
    except UnicodeDecodeError:
        fail("a tensor name is not UTF-8")
    pos += nlen
    code, ndim = take("BB")
    if code not in registry.NAME_OF:
        fail(f"{tname}: unknown method code {code}")
    if ndim > 8:
        fail(f"{tname}: ndim {ndim} > 8")
    shape = take(f"{ndim}I")
    k, d, rows, stages, rank, bits, nsec = take("IIBBIBB")
    method = registry.NAME_OF[code]
    uses = () if method == registry.RAW else registry.get(method).TABLE
    if "bits" in uses and not 1 <= bits <= 16:
        fail(f"{tname}: index width {bits} bits is outside 1..16")
    if rows > 1:
        fail(f"{tname}: rows is {rows}, must be 0 or 1")
    fields = {"k": k, "d": d, "rows": rows, "stages": stages, "rank": rank, "bits": bits}
    for field in TABLE_FIELDS:
        if fields[field] and field not in uses:
            fail(f"{tname}: {field} is {fields[field]} but {method} does not use it (must be 0)")
    if method != "raw" and (len(shape) < 2 or min(shape) < 1):
        fail(f"{tname}: a {method} tensor must have 2 or more dimensions, none 0, table says {tuple(shape)}")
    if "k" in uses and k < 1:
        fail(f"{tname}: {method} with k=0")
    budget.add(tname, math.prod(shape))  # before any section is looked at: Python ints, no wrap
    sections = {}
    for _ in range(nsec):
        role_i, dtype_i, sdim, reserved, *rest = take("BBBB4IQQI")
        dims4, offset, length, crc = rest[:4], rest[4], rest[5], rest[6]
        if role_i >= len(ROLES) or dtype_i >= len(FILE_DTYPES) or sdim > 4:
            fail(f"{tname}: bad section descriptor (role {role_i}, dtype {dtype_i}, ndim {sdim})")
        role, dtype, sshape = ROLES[role_i], FILE_DTYPES[dtype_i], tuple(dims4[:sdim])
        if reserved:
            fail(f"{tname}/{role}: reserved byte is {reserved}, must be 0")
        if any(dims4[sdim:]):
            fail(f"{tname}/{role}: unused dims {tuple(dims4[sdim:])} must be 0")
        if role in sections:
            fail(f"{tname}: two {role} sections")
        count = math.prod(sshape)  # a Python int: (65536,)*4 is 2**64, not 0 as in int64
        if dtype == "huffman" and (role != "indices" or major < V3[0]):
            fail(f"{tname}/{role}: a huffman section is only for indices, in a version 3 file")
        if dtype == "huffman":  # its length is the coded size; the decode checks it (_decode_coded)
            expect = length
        else:
            expect = bitpack.packed_nbytes(count, bits) if dtype == "packed" else count * ITEMSIZE[dtype]
        if length != expect:
            fail(f"{tname}/{role}: {length} bytes where its dims {sshape} need {expect}")
        if offset % ALIGN or offset < HEADER.size or offset + length > len(data):
            fail(f"{tname}/{role}: section at {offset}+{length} is misaligned or outside the file")
        regions.append((offset, length, f"{tname}/{role}"))
        payload = data[offset:offset + length]
        if zlib.crc32(payload) != crc:
            fail(f"checksum mismatch in section {tname}/{role}")
        if dtype == "packed":
            if (count * bits) % 8 and payload[-1] >> ((count * bits) % 8):
                fail(f"{tname}/{role}: the unused high bits of the last byte are not 0")
            arr = np.frombuffer(payload, dtype=np.uint8)
        elif dtype == "huffman":
            arr = np.frombuffer(payload, dtype=np.uint8)  # decoded once the layout has checked its dims
        else:
            np_dtype = np.dtype(np.bool_ if dtype == "bool" else dtype).newbyteorder("<")
            arr = np.frombuffer(payload, dtype=np_dtype).reshape(sshape).astype(np_dtype.newbyteorder("="))
        sections[role] = Section(role, dtype, sshape, arr, bits if dtype in ("packed", "huffman") else 0)
    cb = sections.get("codebook")
    grouped = cb is not None and method != "raw" and len(cb.shape) == registry.get(method).CODEBOOK_NDIM + 1
    t = CompressedTensor(name=tname, method=method, shape=tuple(shape), sections=sections,
                         k=k, d=d, rows=bool(rows), stages=stages, rank=rank, bits=bits,
                         groups=cb.shape[0] if grouped else 1)
    _check_layout(t, fail)
    return t, pos


def _decode_coded(t: CompressedTensor, fail) -> None:
    """Replace a Huffman index section by the packed one it codes. Its dims have matched the
    method's layout, so the decode allocates no more than the declared tensor's indices."""
    sec = t.sections["indices"]
    if not 1 <= t.bits <= 16 or not 1 <= t.k <= (1 << t.bits):
        fail(f"{t.name}: k={t.k} does not fit in {t.bits}-bit indices")
    try:
        symbols = huffman.decode(sec.data, sec.count, t.k)
    except huffman.HuffmanError as e:
        fail(f"{t.name}/indices: damaged Huffman section: {e}")
    packed = packed_section(symbols.reshape(sec.shape), t.bits)
    packed.coded_nbytes = sec.data.size
    t.sections["indices"] = packed


def _check_layout(t: CompressedTensor, fail) -> None:
    """The sections must be exactly those its method decodes, of the shapes it expects, indices < k."""
    if t.method == "raw":
        want = {"raw": tuple(t.shape)}
    else:
        try:
            want = registry.get(t.method).layout(t)
        except ValueError as e:
            fail(f"{t.name}: {e}")
    got = {role: sec.shape for role, sec in t.sections.items()}
    if got != want:
        fail(f"{t.name}: method {t.method} needs sections {want}, has {got}")
    if "indices" in t.sections and t.sections["indices"].dtype == "huffman":
        _decode_coded(t, fail)
    for role, sec in t.sections.items():
        if role in ("codebook", "factor_a", "factor_b"):
            if sec.dtype not in ("float32", "float16"):
                fail(f"{t.name}/{role}: dtype {sec.dtype} where float32 or float16 is needed")
            if not np.isfinite(sec.data).all():
                fail(f"{t.name}/{role}: holds NaN or Inf (codebooks and factors must be finite)")
    if "indices" in t.sections:
        if t.sections["indices"].dtype != "packed":
            fail(f"{t.name}/indices: dtype must be packed")
        if t.k > (1 << t.bits):
            fail(f"{t.name}: k={t.k} does not fit in {t.bits}-bit indices")
        if t.k < (1 << t.bits) and t.indices().max(initial=0) >= t.k:
            fail(f"{t.name}: an index is >= k={t.k}")

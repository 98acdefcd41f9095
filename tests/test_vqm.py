"""The .vqm writer and reader: round trips, size accounting, and rejection of every corruption."""
import struct
import zlib

import numpy as np
import pytest
import torch

import vqexport
from vqexport import write_vqm
from vqexport.errors import VqmError
from vqexport.formats.vqm import HEADER, SECTION, parse_vqm, stored_bits
from vqexport.methods.registry import decode
from vqexport.torch_bridge import decoded_state_dict

from conftest import tiny_cnn

SETTINGS = [
    ("binary", {}),
    ("kmeans", {"k": 16}),
    ("kmeans", {"k": 5}),  # a width that is not a power of two
    ("kmeans", {"k": 16, "codebook_dtype": "float16"}),
    ("pq", {"k": 8, "d": 4}),
    ("pq", {"k": 8, "d": 2, "rows": True}),
    ("rq", {"k": 8, "stages": 2}),
    ("svd", {"rank": 4}),
]


@pytest.fixture(scope="module")
def model():
    return vqexport.load_model(tiny_cnn())


@pytest.mark.parametrize("method,params", SETTINGS)
def test_round_trip_is_exact(model, tmp_path, method, params):
    cm = vqexport.compress(model, method, **params, min_size=0)
    path = tmp_path / "m.vqm"
    write_vqm(cm, path)
    back = vqexport.read_vqm(path)
    a, b = decoded_state_dict(cm), decoded_state_dict(back)
    assert list(a) == list(b) == list(model.state_dict())
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name
    assert back.metadata == cm.metadata


@pytest.mark.parametrize("method,params", SETTINGS)
def test_file_size_matches_accounting(model, tmp_path, method, params):
    cm = vqexport.compress(model, method, **params, min_size=0)
    _assert_size_matches_stored_bits(cm, tmp_path / "m.vqm")


def _assert_size_matches_stored_bits(cm, path) -> float:
    """The file holds the payloads as stored (indices coded where smaller, else packed) plus a
    bounded overhead; and the sizes its table records are those stored_bits() counts."""
    write_vqm(cm, path)
    stored = stored_bits(cm) / 8
    size = path.stat().st_size
    assert stored <= cm.ideal_bits() / 8
    assert stored <= size <= stored + 4096 + 0.001 * stored, (size, stored)
    back = vqexport.read_vqm(path)
    recorded = sum(8 * s.coded_nbytes if s.coded_nbytes else s.ideal_bits
                   for t in back.tensors for s in t.sections.values())
    assert recorded == stored_bits(cm)
    return stored


def test_file_size_matches_accounting_with_coded_indices(tmp_path):
    """Heavy-tailed weights, as trained ones are: k-means puts most of them in a few central
    clusters, so the indices are skewed and the writer codes them."""
    net = tiny_cnn()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                u = torch.rand(p.shape, generator=gen) - 0.5
                p.copy_(-0.02 * torch.sign(u) * torch.log1p(-2 * u.abs()))  # Laplace
    cm = vqexport.compress(vqexport.load_model(net), "kmeans", k=16, min_size=0)
    path = tmp_path / "coded.vqm"
    stored = _assert_size_matches_stored_bits(cm, path)
    coded = [t.name for t in vqexport.read_vqm(path).tensors if t.sections.get("indices") is not None
             and t.sections["indices"].coded_nbytes]
    assert len(coded) >= 2, coded  # both dense layers at least
    assert stored < cm.ideal_bits() / 8 - 500  # coding saved real bytes
    assert stored_bits(cm, "packed") == cm.ideal_bits()
    write_vqm(cm, tmp_path / "packed.vqm", index_coding="packed")
    assert path.stat().st_size < (tmp_path / "packed.vqm").stat().st_size - 500


@pytest.mark.slow  # trains the reference CNN on first use (about 6 minutes)
def test_reference_cnn_file_size_bound(tmp_path):
    from vqexport.zoo import reference_model

    cm = vqexport.compress(reference_model(), "kmeans", k=16, min_size=0)
    _assert_size_matches_stored_bits(cm, tmp_path / "r.vqm")
    assert cm.summary()["layer_compression"] > 7.9  # 32 / 4 bits, less the codebooks


def test_same_seed_gives_identical_bytes(model, tmp_path):
    for i in range(2):
        write_vqm(vqexport.compress(model, "pq", k=8, d=4, seed=7, min_size=0), tmp_path / f"{i}.vqm")
    assert (tmp_path / "0.vqm").read_bytes() == (tmp_path / "1.vqm").read_bytes()


def test_payloads_are_64_byte_aligned(model, tmp_path):
    cm = vqexport.compress(model, "pq", k=8, d=4, min_size=0)
    write_vqm(cm, tmp_path / "m.vqm")
    for off, _length in _sections(( tmp_path / "m.vqm").read_bytes()):
        assert off % 64 == 0


# --- corruption: every region is checked ---------------------------------------------------------

def _header(data):
    return HEADER.unpack_from(data)


def _sections(data):
    """(offset, length) of every payload, walking the table as the spec says."""
    h = _header(data)
    table = data[h[7]:h[7] + h[8] - 4]
    pos, out = 0, []
    for _ in range(h[4]):
        (nlen,) = struct.unpack_from("<H", table, pos)
        pos += 2 + nlen
        _code, ndim = struct.unpack_from("<BB", table, pos)
        pos += 2 + 4 * ndim
        *_, nsec = struct.unpack_from("<IIBBIBB", table, pos)
        pos += struct.calcsize("<IIBBIBB")
        for _ in range(nsec):
            vals = SECTION.unpack_from(table, pos)
            out.append((vals[8], vals[9]))
            pos += SECTION.size
    return out


@pytest.fixture(scope="module")
def good(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("vqm") / "good.vqm"
    write_vqm(vqexport.compress(model, "kmeans", k=16, min_size=0), path)
    return path.read_bytes()


def flip(data, pos):
    b = bytearray(data)
    b[pos] ^= 0x40
    return bytes(b)


def reheader(data, **fields):
    """Rewrite header fields and fix the header checksum, to reach the checks behind it."""
    names = ["magic", "major", "minor", "hsize", "n", "meta_off", "meta_len", "table_off", "table_len", "size",
             "meta_crc", "crc"]
    vals = dict(zip(names, _header(data), strict=True))
    vals.update(fields)
    head = HEADER.pack(*[vals[n] for n in names])
    head = head[:60] + struct.pack("<I", zlib.crc32(head[:60]))
    return head + data[64:]


def test_good_file_parses(good):
    assert parse_vqm(good).tensors


@pytest.mark.parametrize("case,expect", [
    ("empty", "bad magic"),
    ("magic", "bad magic"),
    ("version", "unsupported .vqm version 4"),
    ("header_crc", "checksum mismatch in header"),
    ("truncated", "truncated"),
    ("padded", "truncated or padded"),
    ("meta_crc", "checksum mismatch in metadata"),
    ("table_crc", "checksum mismatch in tensor table"),
    ("meta_outside", "outside"),
])
def test_header_metadata_and_table_corruption(good, case, expect):
    h = dict(zip(["meta_off", "meta_len", "table_off", "table_len"], _header(good)[5:9], strict=True))
    data = {
        "empty": b"",
        "magic": b"XQM\x00" + good[4:],
        "version": reheader(good, major=4),
        "header_crc": flip(good, 20),
        "truncated": good[:-10],
        "padded": good + b"\x00",
        "meta_crc": flip(good, h["meta_off"] + 3),
        "table_crc": flip(good, h["table_off"] + 5),
        "meta_outside": reheader(good, meta_len=len(good)),
    }[case]
    with pytest.raises(VqmError, match=expect):
        parse_vqm(data, "f.vqm")


def test_every_section_checksum_is_checked(good):
    secs = _sections(good)
    assert len(secs) >= 6
    for off, length in secs:
        if length == 0:
            continue
        with pytest.raises(VqmError, match="checksum mismatch in section"):
            parse_vqm(flip(good, off + length // 2), "f.vqm")


def test_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.vqm"
    bad.write_bytes(b"hello")
    with pytest.raises(VqmError, match=r"bad\.vqm: not a \.vqm file"):
        vqexport.read_vqm(bad)


def test_index_beyond_k_is_rejected(model, tmp_path):
    # k=5 uses 3-bit indices, so 5..7 fit the width but not the codebook.
    cm = vqexport.compress(model, "kmeans", k=5, min_size=0)
    t = cm.compressed[0]
    raw = bytearray(t.sections["indices"].data.tobytes())
    raw[0] |= 0b111
    t.sections["indices"].data = np.frombuffer(bytes(raw), dtype=np.uint8)
    write_vqm(cm, tmp_path / "m.vqm", index_coding="packed")  # a code of k symbols cannot hold the bad index
    with pytest.raises(VqmError, match="index is >= k=5"):
        vqexport.read_vqm(tmp_path / "m.vqm")


def test_overlapping_sections_are_rejected(tmp_path):
    # Two equal bias vectors give two sections with the same length and checksum; pointing the
    # second at the first's bytes passes every other check, so only the overlap check can catch it.
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
    with torch.no_grad():
        net[1].bias.copy_(net[0].bias)
    write_vqm(vqexport.compress(net, "kmeans", k=4, min_size=0), tmp_path / "m.vqm")
    data = bytearray((tmp_path / "m.vqm").read_bytes())
    h = _header(data)
    table_off, table_len = h[7], h[8]
    table = bytes(data[table_off:table_off + table_len - 4])
    pos, found = 0, {}
    for _ in range(h[4]):
        (nlen,) = struct.unpack_from("<H", table, pos)
        name = table[pos + 2:pos + 2 + nlen].decode()
        pos += 2 + nlen
        _code, ndim = struct.unpack_from("<BB", table, pos)
        pos += 2 + 4 * ndim
        *_, nsec = struct.unpack_from("<IIBBIBB", table, pos)
        pos += struct.calcsize("<IIBBIBB")
        for _ in range(nsec):
            found[name] = (pos, SECTION.unpack_from(table, pos))
            pos += SECTION.size
    (_, first), (pos1, second) = found["0.bias"], found["1.bias"]
    assert first[9:] == second[9:] and first[8] != second[8]  # same length and crc, other offset
    patched = bytearray(table)
    patched[pos1:pos1 + SECTION.size] = SECTION.pack(*second[:8], first[8], *second[9:])
    data[table_off:table_off + table_len - 4] = patched
    struct.pack_into("<I", data, table_off + table_len - 4, zlib.crc32(bytes(patched)))
    with pytest.raises(VqmError, match="0.bias/raw and 1.bias/raw overlap"):
        parse_vqm(bytes(data), "m.vqm")


# --- issue 14 item 9: the decoded size is capped before anything is allocated --------------------

from vqexport.errors import ConfigError  # noqa: E402
from vqexport.formats import limits  # noqa: E402
from vqexport.formats.vqm import read_vqm  # noqa: E402
from vqexport.ir import CompressedModel, CompressedTensor, dense_section, packed_bytes_section  # noqa: E402

from conftest import run_cli  # noqa: E402


def _pq_bomb(path, m=131072, n=65536):
    """PQ with k=2 and d=n, written by our own writer (every checksum valid): a 528 KiB file whose
    one weight decodes to m*n*4 = 32 GiB."""
    cb = dense_section("codebook", np.zeros((1, 2, n), np.float32))
    idx = packed_bytes_section(bytes(m // 8), (1, m), 1)
    t = CompressedTensor("fc.weight", "pq", (m, n), {"codebook": cb, "indices": idx}, k=2, d=n, bits=1)
    write_vqm(CompressedModel([t], {"format": "vqm"}), path)
    return path


def _svd_bomb(path, m=1 << 20, n=1 << 20):
    """SVD of rank 1: an 8 MiB file that declares a 4096 GiB weight."""
    a = dense_section("factor_a", np.ones((m, 1), np.float32))
    b = dense_section("factor_b", np.ones((1, n), np.float32))
    write_vqm(CompressedModel([CompressedTensor("fc.weight", "svd", (m, n), {"factor_a": a, "factor_b": b}, rank=1)],
                    {"format": "vqm"}), path)
    return path


def test_decompression_bomb_is_refused_before_allocation(tmp_path):
    import tracemalloc

    path = _pq_bomb(tmp_path / "bomb.vqm")
    assert path.stat().st_size < 529 * 1024  # 528 KiB
    tracemalloc.start()
    try:
        with pytest.raises(VqmError, match=r"bomb\.vqm: the file declares 32\.00 GiB of decoded float32 weights, "
                                           r"over 4096x the file's .*--max-decoded-size") as e:
            read_vqm(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(e.value)
    assert peak < 16 * 2**20, peak  # the file and a few copies of its sections, nothing decoded


def test_a_raised_cap_reads_the_bomb(tmp_path):
    path = _pq_bomb(tmp_path / "bomb.vqm")
    cm = read_vqm(path, max_decoded_size=32 * 2**30)
    assert cm.tensors[0].numel == 2**33 and cm.summary()["model_dense_bytes"] == 32 * 2**30
    with pytest.raises(VqmError, match="over the --max-decoded-size of 31.00 GiB"):
        read_vqm(path, max_decoded_size=31 * 2**30)
    with limits.max_decoded_size(64 * 2**30):  # what the CLI flag does, for this process and its children
        assert read_vqm(path).tensors[0].numel == 2**33
    assert limits.ENV not in __import__("os").environ


def test_absolute_cap_applies_to_big_files(tmp_path):
    """8 MiB x 4096 is 32 GiB, so here the 4 GiB default is the cap that speaks."""
    path = _svd_bomb(tmp_path / "svd.vqm")
    with pytest.raises(VqmError, match=r"4\.00 TiB of decoded float32 weights, over the default cap of 4\.00 GiB"):
        read_vqm(path)


def test_cli_inspect_refuses_the_bomb_and_the_flag_raises_the_cap(tmp_path):
    path = _svd_bomb(tmp_path / "svd.vqm")
    code, out, err = run_cli("inspect", path)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "svd.vqm" in err and "--max-decoded-size" in err and "Traceback" not in err
    code, out, err = run_cli("inspect", path, "--max-decoded-size", "4TiB")
    assert code == 0, err
    assert "dense model 4096.00 GiB" in out
    code, _, err = run_cli("inspect", path, "--max-decoded-size", "lots")
    assert code == 2 and "--max-decoded-size" in err and "Traceback" not in err


def test_cli_eval_and_export_refuse_the_bomb(tmp_path):
    path = _pq_bomb(tmp_path / "bomb.vqm")
    for args in (("eval", path, "--data", "digits"), ("to-onnx", path, "-o", tmp_path / "b.onnx")):
        code, out, err = run_cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1, (args, err[-2000:])
        assert "32.00 GiB" in err and "--max-decoded-size" in err
    assert not (tmp_path / "b.onnx").exists()


@pytest.mark.parametrize("text,size", [("8GiB", 8 * 2**30), ("512MiB", 512 * 2**20), ("1GB", 10**9),
                                       ("123", 123), ("1.5 GiB", 3 * 2**29), ("64k", 64000), ("2tib", 2**41)])
def test_parse_size(text, size):
    assert limits.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "0", "-1", "5XB", "1e9", "GiB", "0.1"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        limits.parse_size(text)


def test_the_default_caps():
    assert limits.DEFAULT_MAX_DECODED == 4 * 2**30 and limits.MAX_DECODED_RATIO == 4096
    assert limits.decoded_cap(1000)[0] == 4096 * 1000
    assert limits.decoded_cap(10 * 2**20)[0] == 4 * 2**30
    assert limits.decoded_cap(10, max_decoded=5 * 2**40)[0] == 5 * 2**40  # the flag replaces both


# --- a file built field by field, to reach each check with every checksum valid ---------------------

def _section(role, dtype, dims, payload, reserved=0, dims4=None):
    return {"role": role, "dtype": dtype, "dims": tuple(dims), "payload": bytes(payload), "reserved": reserved,
            "dims4": dims4}


def _tensor(name, method, shape, sections, **fields):
    return {"name": name, "method": method, "shape": tuple(shape), "sections": sections,
            **{k: fields.get(k, 0) for k in ("k", "d", "rows", "stages", "rank", "bits")}}


def _build(tensors, meta=b"{}", gap=b""):
    """A .vqm from explicit fields: payloads 64-byte aligned (after `gap` bytes of padding), then
    the table, then the metadata; every checksum correct."""
    from vqexport.ir import DTYPES, ROLES
    from vqexport.methods.registry import CODE_OF

    body = bytearray(64)
    records = b""
    for t in tensors:
        name = t["name"].encode()
        rec = struct.pack("<H", len(name)) + name
        rec += struct.pack(f"<BB{len(t['shape'])}I", CODE_OF[t["method"]], len(t["shape"]), *t["shape"])
        rec += struct.pack("<IIBBIBB", t["k"], t["d"], t["rows"], t["stages"], t["rank"], t["bits"],
                           len(t["sections"]))
        for s in t["sections"]:
            body += gap if len(body) == 64 else b""
            body += bytes(-len(body) % 64)
            offset = len(body)
            body += s["payload"]
            dims4 = s["dims4"] or list(s["dims"]) + [0] * (4 - len(s["dims"]))
            rec += SECTION.pack(ROLES.index(s["role"]), DTYPES.index(s["dtype"]), len(s["dims"]), s["reserved"],
                                *dims4, offset, len(s["payload"]), zlib.crc32(s["payload"]))
        records += rec
    table = records + struct.pack("<I", zlib.crc32(records))
    table_off = len(body)
    body += table
    meta_off = len(body)
    body += meta
    head = HEADER.pack(b"VQM\x00", 1, 0, 64, len(tensors), meta_off, len(meta), table_off, len(table), len(body),
                       zlib.crc32(meta), 0)
    body[:64] = head[:60] + struct.pack("<I", zlib.crc32(head[:60]))
    return bytes(body)


def _kmeans(name="fc.weight", **fields):
    """A valid 4x4 k-means tensor with k=4: 2-bit indices, all < 4."""
    idx = bytes([0b11100100] * 4)  # values 0, 1, 2, 3 repeated
    secs = [_section("codebook", "float32", (4,), np.arange(4, dtype="<f4").tobytes()),
            _section("indices", "packed", (16,), idx)]
    return _tensor(name, "kmeans", (4, 4), fields.pop("sections", secs), **{"k": 4, "bits": 2, **fields})


def _svd(rank=2, m=3, n=4, a=None):
    a = np.ones((m, rank), "<f4") if a is None else a
    return _tensor("svd.weight", "svd", (m, n), [_section("factor_a", "float32", (m, rank), a.tobytes()),
                                                 _section("factor_b", "float32", (rank, n),
                                                          np.ones((rank, n), "<f4").tobytes())], rank=rank)


def _raw(name="bias", values=(1.0, 2.0, 3.0), **fields):
    arr = np.asarray(values, "<f4")
    return _tensor(name, "raw", arr.shape, [_section("raw", "float32", arr.shape, arr.tobytes(), **fields)])


def test_the_builder_makes_valid_files():
    cm = parse_vqm(_build([_kmeans(), _svd(), _raw()], b'{"format":"vqm","skipped":{"bias":"why"}}'))
    assert [t.name for t in cm.tensors] == ["fc.weight", "svd.weight", "bias"]
    assert np.array_equal(decode(cm["fc.weight"]), np.tile(np.arange(4, dtype=np.float32), 4).reshape(4, 4))
    assert cm.summary()["layers_compressed"] == 2


def test_dimension_product_that_wraps_int64_is_caught():
    """(65536,)*4 is 2**64 elements: 0 in int64, so a 0-byte payload used to pass, then reshape failed."""
    sec = _section("raw", "float32", (65536,) * 4, b"")
    with pytest.raises(VqmError, match=r"f\.vqm: bias/raw: 0 bytes where its dims .* need 73786976294838206464"):
        parse_vqm(_build([_tensor("bias", "raw", (1,), [sec])]), "f.vqm")
    # The same product in a tensor's own shape is counted, in Python ints, against the cap.
    with pytest.raises(VqmError, match="over 4096x the file's"):
        parse_vqm(_build([_tensor("big", "raw", (65536,) * 4, [sec])]), "f.vqm")


def _f32(values):
    return np.asarray(values, "<f4").tobytes()


@pytest.mark.parametrize("tensors,message", [
    ([_raw(reserved=1)], "bias/raw: reserved byte is 1, must be 0"),
    ([_raw(dims4=[3, 0, 7, 0])], r"bias/raw: unused dims \(0, 7, 0\) must be 0"),
    ([_kmeans(rows=2)], "rows is 2, must be 0 or 1"),
    ([_kmeans(rows=1)], "rows is 1 but kmeans does not use it"),
    ([_kmeans(d=4)], "d is 4 but kmeans does not use it"),
    ([_kmeans(stages=1)], "stages is 1 but kmeans"),
    ([_kmeans(rank=2)], "rank is 2 but kmeans"),
    ([_raw() | {"bits": 8}], "bits is 8 but raw"),
    ([_raw() | {"k": 3}], "k is 3 but raw"),
    ([_svd() | {"k": 2}], "k is 2 but svd"),
    ([_svd(rank=4, m=3)], r"svd rank 4 is outside 1..min\(m, n\) = 3"),
    ([_svd() | {"rank": 0}], "svd rank 0 is outside"),
    ([_kmeans(k=0)], "kmeans with k=0"),
    ([_raw(), _raw()], "two tensors named bias"),
    ([_kmeans(sections=_kmeans()["sections"] * 2)], "two codebook sections"),
    ([_kmeans(sections=[_section("codebook", "float32", (4,), _f32([0, np.nan, 2, 3])),
                        _kmeans()["sections"][1]])], r"fc\.weight/codebook: holds NaN or Inf"),
    ([_svd(a=np.array([[1, np.inf], [0, 0], [0, 0]], "<f4"))], "svd.weight/factor_a: holds NaN or Inf"),
    ([_kmeans(sections=[_kmeans()["sections"][0], _section("indices", "packed", (15,), b"\xe4\xe4\xe4\xe4")])],
     "unused high bits of the last byte"),
    ([_raw(name="a\nb"), _raw(name="a\nb")], r"two tensors named a\\nb"),
])
def test_fields_that_must_be_zero_or_consistent(tensors, message):
    with pytest.raises(VqmError, match=message) as e:
        parse_vqm(_build(tensors), "f.vqm")
    assert str(e.value).startswith("f.vqm: ") and "\n" not in str(e.value)


def test_rq_needs_a_stage():
    t = _tensor("r.weight", "rq", (2, 4), [_section("codebook", "float32", (0, 2, 4), b""),
                                           _section("indices", "packed", (0, 2), b"")], k=2, bits=1)
    with pytest.raises(VqmError, match="rq with 0 stages"):
        parse_vqm(_build([t]), "f.vqm")


def test_padding_between_regions_must_be_zero():
    parse_vqm(_build([_raw()], gap=bytes(3)))
    with pytest.raises(VqmError, match="between regions are not zero padding"):
        parse_vqm(_build([_raw()], gap=b"\x00\x07"), "f.vqm")


def test_writer_refuses_what_readers_reject(tmp_path):
    sections = {"codebook": dense_section("codebook", np.array([0, np.nan], np.float32)),
                "indices": packed_bytes_section(b"\x05", (4,), 1)}
    t = CompressedTensor("w", "kmeans", (2, 2), sections, k=2, bits=1)
    with pytest.raises(ConfigError, match="codebook holds NaN or Inf"):
        write_vqm(CompressedModel([t], {}), tmp_path / "nan.vqm")
    with pytest.raises(ConfigError, match="NaN or Infinity"):
        write_vqm(CompressedModel([], {"x": float("nan")}), tmp_path / "meta.vqm")
    assert not list(tmp_path.iterdir())


# --- issue 14 item 10: the metadata JSON is checked at read time ---------------------------------

def _with_metadata(data: bytes, meta: bytes) -> bytes:
    """Replace the metadata (the last region, as the writer lays it out) and fix the header."""
    h = _header(data)
    assert h[5] + h[6] == len(data)
    out = data[:h[5]] + meta
    names = ["meta_len", "size", "meta_crc"]
    return reheader(out, **dict(zip(names, (len(meta), len(out), zlib.crc32(meta)), strict=True)))


ISSUE_METADATA = [
    (b'"x"', "metadata is a string, not a JSON object"),
    (b"[]", "metadata is an array, not a JSON object"),
    (b"null", "metadata is null, not a JSON object"),
    (b'{"skipped": 5}', 'metadata "skipped" must be an object, is a number'),
    (b'{"skipped": {"nosuch": "x"}}', 'metadata "skipped" names nosuch, which is not a raw tensor of the file'),
    (b"[" * 100000, "metadata nests deeper than 64 levels"),
]


@pytest.mark.parametrize("meta,message", ISSUE_METADATA + [
    (b'{"skipped": null}', 'metadata "skipped" must be an object, is null'),
    (b'{"skipped": {"0.weight": 5}}', r'"skipped\.0\.weight" must be a string \(the reason\)'),
    (b'{"layers": {"0.bias": {}}}', "names 0.bias, which is not a compressed tensor"),
    (b'{"layers": {"0.weight": {"shape": [0, 5]}}}', "must be an array of positive integers"),
    (b'{"layers": []}', '"layers" must be an object, is an array'),
    (b'{"summary": {"x": NaN}}', "NaN is not JSON"),
    (b'{"summary": {"x": "big"}}', '"summary.x" must be a finite number or null, is a string'),
    (b'{"summary": {"x": 1' + b"0" * 400 + b"}}", '"summary.x" must be a finite number'),
    (b'{"input": {"shape": [1, true]}}', '"input.shape" must be an array of positive integers, is a boolean'),
    (b'{"input": {"mean": [Infinity]}}', "Infinity is not JSON"),
    (b'{"labels": "abc"}', '"labels" must be an array or null, is a string'),
    (b'{"labels": [1]}', '"labels" must be an array of strings'),
    (b'{"source": {"arch": 5}}', '"source.arch" must be a string or null'),
    (b'{"config": {"k": 1.5}}', '"config.k" must be an integer or null'),
    (b'{"config": {"rows": 1}}', '"config.rows" must be a boolean'),
    (b'{"format": 1}', '"format" must be a string'),
    (b'{"producer": "\\ud800"}', "lone surrogate"),
    (b'{"a": "\xff"}', "not valid UTF-8"),
    (b'{"a": 1', "not valid JSON"),
    (b'{"a":' + b"[" * 64 + b"]" * 64 + b"}", "nests deeper than 64 levels"),
    (b'{"tied": []}', '"tied" must be an object'),
    (b'{"tied": {"x.weight": 5}}', r'"tied\.x\.weight" must be a string'),
    (b'{"tied": {"x.weight": "nosuch"}}', "the alias must not be stored, its target must be"),
    (b'{"tied": {"0.weight": "0.bias"}}', "the alias must not be stored"),
])
def test_metadata_is_validated(good, meta, message):
    with pytest.raises(VqmError, match=message) as e:
        parse_vqm(_with_metadata(good, meta), "m.vqm")
    assert str(e.value).startswith("m.vqm: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("meta", [b"{}", b'{"unknown": {"deep": [[[1]]]}, "labels": null, "input": null}',
                                  b'{"a":' + b"[" * 63 + b"]" * 63 + b"}",
                                  b'{"s": "' + b"[" * 76 + b'\\""}'])
def test_metadata_within_the_schema_is_read(good, meta):
    cm = parse_vqm(_with_metadata(good, meta))
    assert cm.summary()["layers_compressed"] == 3  # the conv and the two linear layers


def test_metadata_size_is_capped(good):
    meta = b'{"pad": "' + b"x" * limits.MAX_METADATA_BYTES + b'"}'
    with pytest.raises(VqmError, match="over the cap of 16777216"):
        parse_vqm(_with_metadata(good, meta), "m.vqm")


@pytest.mark.parametrize("meta", [m for m, _ in ISSUE_METADATA])
def test_cli_inspect_reports_bad_metadata_in_one_line(good, tmp_path, meta):
    path = tmp_path / "m.vqm"
    path.write_bytes(_with_metadata(good, meta))
    code, out, err = run_cli("inspect", path)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "m.vqm" in err, err[-2000:]


@pytest.mark.parametrize("command", ["inspect", "eval", "to-onnx", "to-tflite", "bench", "sweep"])
def test_every_command_that_reads_a_vqm_takes_the_flag(command):
    from vqexport.cli import build_parser

    extra = ["-o", "out"] if command == "sweep" else []
    args = build_parser().parse_args([command, "m.vqm", *extra, "--max-decoded-size", "8GiB"])
    assert args.max_decoded_size == 8 * 2**30


def test_only_regular_files_are_read(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.vqm")
    with pytest.raises(VqmError, match=r"pipe\.vqm: not a regular file"):
        read_vqm(tmp_path / "pipe.vqm")  # without a writer, a blocking open would wait for ever
    with pytest.raises(VqmError, match="/dev/zero: not a regular file"):
        read_vqm("/dev/zero")
    with pytest.raises(VqmError, match="is a folder"):
        read_vqm(tmp_path)

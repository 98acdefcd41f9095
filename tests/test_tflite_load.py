"""decode="load": the file is compact, a stock interpreter refuses it, the loader rejects tampering."""
import json
import os

import numpy as np
import pytest

from conftest import TINY_CNN_INPUT, tiny_cnn

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import vqexport
from vqexport.formats.tflite import external as tflite_external
from vqexport.formats.tflite import flatbuffer as tflite_rewrite
from vqexport.formats.tflite.export import export_tflite
from vqexport.formats.tflite.external import TfliteLoadError
from vqexport.load import load_model
from vqexport.methods.registry import decode


@pytest.fixture(scope="module")
def load_file(tmp_path_factory):
    lm = load_model(tiny_cnn())
    lm.input = dict(TINY_CNN_INPUT)
    cm = vqexport.compress(lm, "pq", k=8, d=4, seed=0, min_size=0)
    path = tmp_path_factory.mktemp("load") / "m.tflite"
    report = export_tflite(cm, path, model=lm, decode="load")
    return path, cm, report


def _rewrite(data: bytes, edit) -> bytes:
    """Re-serialize `data` after edit(model, meta_json) changed the object tree."""
    s = tflite_rewrite.schema()
    model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(bytearray(data), 0))
    meta = json.loads(tflite_rewrite.read_metadata(data, tflite_rewrite.METADATA_NAME))
    edit(model, meta)
    ed = tflite_rewrite.Editor(model)
    ed.set_metadata(tflite_rewrite.METADATA_NAME, json.dumps(meta).encode())
    return tflite_rewrite.serialize(model)


def test_slots_hold_the_reference_decode(load_file):
    path, cm, report = load_file
    data = path.read_bytes()
    full = tflite_external.expand(data, str(path))
    assert full[:len(data)] == data and len(full) - len(data) == report["load_area_bytes"] > 0
    slots = tflite_rewrite.read_info(data)["slots"]
    model = tflite_rewrite.read_model(full)  # now every buffer lies inside: a plain .tflite
    assert {s["layer"] for s in slots} == {t.name for t in cm.compressed}
    for s in slots:
        w = decode(cm[s["layer"]])
        got = np.frombuffer(bytes(model.buffers[s["buffer"]].data), dtype="<f4").reshape(s["shape"])
        assert np.array_equal(got, w if s["layout"] == "W" else w.T)


def test_interpreter_source_expands_to_a_temporary_file(load_file):
    """The loader's file is the reference expansion, and it is gone once the interpreter is built."""
    from ai_edge_litert.interpreter import Interpreter

    path, _, _ = load_file
    with tflite_external.interpreter_source(path) as source:
        tmp = source["model_path"]
        assert tmp != str(path)
        assert open(tmp, "rb").read() == tflite_external.expand(path.read_bytes())
        it = Interpreter(**source)
    assert not os.path.exists(tmp)
    it.allocate_tensors()  # the interpreter keeps its mapping of the removed file
    it.invoke()


def test_stock_interpreter_refuses_the_bare_file(load_file):
    from ai_edge_litert.interpreter import Interpreter

    path, _, _ = load_file
    with pytest.raises((ValueError, RuntimeError), match="out of range offset"):
        Interpreter(model_path=str(path)).allocate_tensors()


def test_other_files_pass_through_unchanged(tmp_path):
    lm = load_model(tiny_cnn())
    lm.input = dict(TINY_CNN_INPUT)
    path = tmp_path / "once.tflite"
    export_tflite(vqexport.compress(lm, "kmeans", k=4, seed=0, min_size=0), path, model=lm)
    data = path.read_bytes()
    assert tflite_external.expand(data) is data
    with tflite_external.interpreter_source(path) as source:
        assert source == {"model_path": str(path)}


def _bump_offset(model, meta):
    model.buffers[meta["slots"][0]["buffer"]].offset += 1 << 30  # a huge allocation, were it trusted


def _overlap(model, meta):
    a, b = (model.buffers[s["buffer"]] for s in meta["slots"][:2])
    b.offset = a.offset


def _wrong_layer(model, meta):
    meta["slots"][0]["layer"] = "nope.weight"


def _wrong_shape(model, meta):
    meta["slots"][0]["shape"] = meta["slots"][0]["shape"][::-1] + [1]


def _dup_slot(model, meta):
    meta["slots"].append(dict(meta["slots"][0]))  # would double the area the file may claim


def _drop_vqm(model, meta):
    model.metadata = [m for m in model.metadata if m.name != tflite_external.EMBED_NAME.encode()]


def _corrupt_vqm(model, meta):
    md = next(m for m in model.metadata if m.name == tflite_external.EMBED_NAME.encode())
    raw = np.array(model.buffers[md.buffer].data, dtype=np.uint8)
    raw[-3] ^= 0xFF  # inside the .vqm's JSON metadata: its checksum no longer matches
    model.buffers[md.buffer].data = raw


@pytest.mark.parametrize("edit, message", [
    (_bump_offset, "outside the decode area"),
    (_overlap, "overlap|outside the decode area"),
    (_wrong_layer, "lacks"),
    (_wrong_shape, "does not fit"),
    (_dup_slot, "two slots for the same layer"),
    (_drop_vqm, "no vqexport.vqm"),
    (_corrupt_vqm, "checksum"),
])
def test_tampered_files_fail_with_one_line(load_file, edit, message):
    path, _, _ = load_file
    bad = _rewrite(path.read_bytes(), edit)
    with pytest.raises(vqexport.errors.VqexportError, match=message) as e:
        tflite_external.expand(bad, "bad.tflite")
    assert "\n" not in str(e.value) and str(e.value).startswith("bad.tflite")


@pytest.mark.parametrize("data", [b"", b"abc", b"\xff\xff\x00\x00" + bytes(12),
                                  b"\x08\x00\x00\x00TFL3\xf0\xff\xff\x7f" + bytes(8)])
def test_garbage_is_not_a_model(data):
    with pytest.raises(TfliteLoadError, match="^g.tflite: not a readable .tflite"):
        tflite_external.expand(data, "g.tflite")


def test_random_damage_is_an_error_or_bounded(load_file):
    """Flipped bytes and truncations: a one-line VqexportError, or a model no larger than the weights allow."""
    path, cm, _ = load_file
    data = path.read_bytes()
    limit = len(data) + 64 + 2 * sum(-(-4 * t.numel // 64) * 64 for t in cm.compressed)
    rng = np.random.default_rng(0)
    errors = 0
    for _ in range(300):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        if rng.random() < 0.1:
            b = b[:int(rng.integers(0, len(b)))]
        try:
            assert len(tflite_external.expand(bytes(b), "f.tflite")) <= limit
        except vqexport.errors.VqexportError as e:
            assert str(e).startswith("f.tflite") and "\n" not in str(e)
            errors += 1
    assert errors > 0  # the damage was noticed at least sometimes (most flips land in payload bytes)


# --- issue 14 items 9 and 10: caps and untrusted JSON in the loader -------------------------------

def _set_vqexport_metadata(data: bytes, raw: bytes) -> bytes:
    s = tflite_rewrite.schema()
    model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(bytearray(data), 0))
    tflite_rewrite.Editor(model).set_metadata(tflite_rewrite.METADATA_NAME, raw)
    return tflite_rewrite.serialize(model)


@pytest.mark.parametrize("raw, message", [
    (b"[" * 100000, "nests deeper than 64 levels"),
    (b'{"decode": "load", "slots": [{"buffer": true, "layer": "x", "layout": "W", "shape": [1, 1]}]}',
     "malformed slot"),
    (b'{"decode": "load", "slots": [{"buffer": 1, "layer": "x", "layout": "W", "shape": "12"}]}', "malformed slot"),
    (b'{"decode": "load", "slots": [{"buffer": 1e400}]}', "malformed slot"),
    (b'{"decode": "load", "slots": NaN}', "NaN is not JSON"),
])
def test_untrusted_slot_json_fails_with_one_line(load_file, raw, message):
    path, _, _ = load_file
    bad = _set_vqexport_metadata(path.read_bytes(), raw)
    with pytest.raises(vqexport.errors.VqexportError, match=message) as e:
        tflite_external.expand(bad, "bad.tflite")
    assert "\n" not in str(e.value) and str(e.value).startswith("bad.tflite")


def test_decoded_size_cap_applies_to_the_loader(load_file):
    path, cm, report = load_file
    data = path.read_bytes()
    declared = sum(4 * t.numel for t in cm.compressed)
    with pytest.raises(vqexport.errors.VqexportError, match="over the --max-decoded-size of") as e:
        tflite_external.expand(data, "m.tflite", max_decoded_size=declared - 1)
    assert str(e.value).startswith("m.tflite")
    assert len(tflite_external.expand(data, "m.tflite", max_decoded_size=declared + 4096)) > len(data)
    with pytest.raises(vqexport.errors.VqexportError, match="over the --max-decoded-size"):
        with tflite_external.interpreter_source(path, max_decoded_size=1024):
            pass


def test_bench_and_eval_pass_the_flag_to_the_loader(load_file):
    from conftest import run_cli

    path, _, _ = load_file
    for args in (("bench", path, "--runs", "1", "--warmup", "0"), ("eval", path, "--data", "digits")):
        code, out, err = run_cli(*args, "--max-decoded-size", "1KiB")
        assert code == 2 and len(err.strip().splitlines()) == 1, (args, err[-2000:])
        assert "--max-decoded-size of 1.00 KiB" in err and str(path.name) in err


def test_loader_reads_only_regular_files(tmp_path):
    os.mkfifo(tmp_path / "pipe.tflite")
    with pytest.raises(TfliteLoadError, match="not a regular file"):
        with tflite_external.interpreter_source(tmp_path / "pipe.tflite"):
            pass

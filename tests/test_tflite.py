"""TFLite export: every method x every decode mode, run in LiteRT against to_torch(cm).
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_CNN_INPUT, tf216_python, tiny_cnn

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import vqexport
from vqexport import to_torch
from vqexport.errors import ConfigError, VqexportError
from vqexport.formats.tflite import decode as tflite_decode
from vqexport.formats.tflite import external as tflite_external
from vqexport.formats.tflite import flatbuffer as tflite_rewrite
from vqexport.formats.tflite.export import export_dense_tflite, export_tflite
from vqexport.load import load_model

CASES = {
    "kmeans16": ("kmeans", {"k": 16}),
    "kmeans5": ("kmeans", {"k": 5}),  # 3-bit indices straddle int32 words
    "kmeans300-f16": ("kmeans", {"k": 300, "codebook_dtype": "float16"}),  # 9 bits, float16 codebook
    "binary": ("binary", {}),
    "pq-cols": ("pq", {"k": 8, "d": 4}),
    "pq-rows": ("pq", {"k": 4, "d": 2, "rows": True}),
    "rq": ("rq", {"k": 8, "stages": 3}),
    "svd": ("svd", {"rank": 4}),
    # the whole model: the conv's filters too (OHWI in the .tflite), grouped codebooks
    "whole-kmeans-g2": ("kmeans", {"k": 8, "group_size": 2, "types": ("conv", "linear")}),
    "whole-vq": ("vq", {"k": 4, "d": 1, "types": ("conv", "linear")}),
}
MODES = ("once", "every-run", "load")
N_INPUTS = 100


@pytest.fixture(scope="module")
def cnn():
    lm = load_model(tiny_cnn())
    lm.input = dict(TINY_CNN_INPUT)
    lm.labels = [str(i) for i in range(10)]
    return lm


@pytest.fixture(scope="module")
def inputs():
    return torch.from_numpy(np.random.default_rng(1).standard_normal((N_INPUTS, 1, 12, 12)).astype(np.float32))


@pytest.fixture(scope="module")
def exported(cnn, inputs, tmp_path_factory):
    """Every case in every mode: (report, path, torch logits, cm)."""
    out = tmp_path_factory.mktemp("tflite")
    result = {}
    for case, (method, params) in CASES.items():
        cm = vqexport.compress(cnn, method, seed=0, **{"min_size": 0, "types": ("linear",), **params})
        with torch.no_grad():
            ref = to_torch(cm, cnn)(inputs).numpy()
        for mode in MODES:
            path = out / f"{case}-{mode}.tflite"
            result[case, mode] = (export_tflite(cm, path, model=cnn, decode=mode), path, ref, cm)
    return result


def run_litert(path, nchw: torch.Tensor) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    with tflite_external.interpreter_source(path) as source:
        it = Interpreter(**source, num_threads=2)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    nhwc = nchw.permute(0, 2, 3, 1).numpy()
    it.resize_tensor_input(inp["index"], [1, *nhwc.shape[1:]])
    it.allocate_tensors()
    rows = []
    for x in nhwc:
        it.set_tensor(inp["index"], np.ascontiguousarray(x[None]))
        it.invoke()
        rows.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(rows)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_decoded_torch(exported, inputs, case, mode):
    report, path, ref, cm = exported[case, mode]
    got = run_litert(path, inputs)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    assert set(report["layers"]) == {t.name for t in cm.compressed}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_size_ops_metadata_read_back(exported, case, mode):
    report, path, ref, cm = exported[case, mode]
    data = path.read_bytes()
    model = tflite_rewrite.read_model(data)
    # size: the file, and the constant buffers read back, within 2% + 16 KiB of the ideal payload
    ideal = cm.ideal_bits() / 8
    stored = sum(len(b.data) for b in model.buffers if b.data is not None)
    assert len(data) == report["bytes"] and len(data) <= 1.02 * ideal + 16 * 1024
    assert stored <= 1.02 * ideal + 16 * 1024
    # no dense copy of a compressed weight: no float32 buffer of m*n elements is left
    dense_sizes = {4 * t.numel for t in cm.compressed}
    assert not any(b.data is not None and len(b.data) in dense_sizes for b in model.buffers)
    # every op is builtin, at a version the TFLite 2.16.1 runtime has
    table = json.loads(tflite_rewrite.OP_VERSIONS_FILE.read_text())["max_version"]
    for name, version in tflite_rewrite.used_ops(model):
        assert name in table and version <= table[name], (name, version)
    assert tflite_rewrite.unsupported_ops(model) == []
    runtime = tflite_rewrite.read_metadata(data, "min_runtime_version").rstrip(b"\0").decode()
    assert tuple(map(int, runtime.split("."))) <= (2, 16, 1)
    names = {n for n, _ in tflite_rewrite.used_ops(model)}
    if mode == "once":
        assert {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"} <= names
        assert len(model.subgraphs) == 2
    else:
        assert "CALL_ONCE" not in names and len(model.subgraphs) == 1
    if mode == "load":  # no decode ops at all: the weights are constants the loader fills
        assert not names & {"GATHER", "RIGHT_SHIFT", "FLOOR_MOD", "BATCH_MATMUL"}, names
        assert runtime == "2.16.1" and report["load_area_bytes"] >= 4 * sum(t.numel for t in cm.compressed)
    meta = tflite_rewrite.read_info(path)
    assert meta["input"]["shape"] == [1, 12, 12, 1] and meta["input"]["layout"] == "NHWC"
    assert meta["input"]["mean"] == [0.5] and meta["input"]["std"] == [0.25]
    assert meta["labels"] == [str(i) for i in range(10)]
    assert meta["config"]["method"] == cm.metadata["config"]["method"] and meta["decode"] == mode


@pytest.mark.parametrize("bits", range(1, 17))
def test_index_chain_every_width(bits):
    """The int32-word unpacking ops, alone in a model, give back the indices for b = 1..16."""
    from ai_edge_litert.interpreter import Interpreter

    count = 7 * 32 + 5  # not a whole number of groups: exercises the SLICE
    values = np.random.default_rng(bits).integers(0, 1 << bits, count)
    values[:2] = [0, (1 << bits) - 1]
    s = tflite_rewrite.schema()
    model = s.ModelT()
    model.version, model.operatorCodes, model.buffers, model.subgraphs = 3, [], [s.BufferT()], []
    ed = tflite_rewrite.Editor(model)
    sg = ed.subgraph("main")
    out = tflite_decode.Chain(ed, sg, "idx").indices(values, bits, [count])
    ed.finish()
    model.subgraphs[sg].outputs = np.array([out], dtype=np.int32)
    it = Interpreter(model_content=tflite_rewrite.serialize(model))
    it.allocate_tensors()
    it.invoke()
    assert np.array_equal(it.get_tensor(it.get_output_details()[0]["index"]), values)
    words = tflite_decode.pack_words(values, bits)
    assert np.array_equal(tflite_decode.unpack_words_reference(words, bits, count), values)
    assert words.nbytes <= -(-count * bits // 8) + 4 * (words.shape[1])  # at most one partial group of padding


def test_dense_baseline_and_errors(cnn, inputs, tmp_path):
    path = tmp_path / "dense.tflite"
    report = export_dense_tflite(cnn, path)
    with torch.no_grad():
        ref = cnn.module(inputs).numpy()
    got = run_litert(path, inputs)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    assert report["input"]["layout"] == "NHWC" and tflite_rewrite.read_info(path)["labels"] == cnn.labels
    cm = vqexport.compress(cnn, "kmeans", k=4, seed=0, min_size=0)
    with pytest.raises(ConfigError, match="decode"):
        export_tflite(cm, tmp_path / "x.tflite", model=cnn, decode="sometimes")
    bare = load_model(tiny_cnn())
    with pytest.raises(ConfigError, match="input shape"):
        export_tflite(vqexport.compress(bare, "kmeans", k=4, seed=0, min_size=0), tmp_path / "x.tflite", model=bare)
    with pytest.raises(VqexportError, match="does not exist"):
        export_tflite(cm, tmp_path / "no" / "x.tflite", model=cnn)
    assert not (tmp_path / "x.tflite").exists()


class _Unconvertible(torch.nn.Module):
    """A shift on integers: torch.export takes it, litert-torch 0.10.0 has no lowering for it."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(((x * 8).to(torch.int32) >> 1).to(torch.float32))


def test_conversion_failure_is_one_line_that_helps(tmp_path, capsys):
    """Item 4: the step, the operator, what to try and the full log's path; exit 2, no output file."""
    torch.export.save(torch.export.export(_Unconvertible().eval(), (torch.zeros(1, 16),)), tmp_path / "m.pt2")
    from vqexport.cli import main

    code = main(["--quiet", "to-tflite", str(tmp_path / "m.pt2"), "--min-size", "0", "-o", str(tmp_path / "m.tflite")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("vqexport: error: "), err
    assert "litert-torch could not convert the model" in err and "rshift" in err and "vqexport to-onnx" in err, err
    log = Path(err.rsplit("the converter's full log: ", 1)[1])
    assert log.is_file() and "Traceback" in log.read_text()
    assert not (tmp_path / "m.tflite").exists() and not (tmp_path / "m.vqm").exists()
    log.unlink()


def test_runs_in_tflite_2_16_1(exported, inputs, tmp_path):
    """The files load and agree in TensorFlow Lite 2.16.1 itself (when a venv with it exists)."""
    python = tf216_python()
    if python is None:
        pytest.skip("no TF 2.16.1 Python: `make test` installs .venv-tf216, or set VQEXPORT_TF216_PYTHON")
    keys = sorted(exported)
    np.save(tmp_path / "x.npy", inputs.permute(0, 2, 3, 1).numpy()[:10])
    files = []
    for k in keys:  # a decode="load" file runs as the loader hands it over: expanded
        path = exported[k][1]
        if k[1] == "load":
            path = tmp_path / path.name
            path.write_bytes(tflite_external.expand(exported[k][1].read_bytes()))
        files.append(str(path))
    script = Path(__file__).parent / "helpers" / "tflite_runcheck.py"
    p = subprocess.run([python, str(script), str(tmp_path / "x.npy"), str(tmp_path / "o.npz"), *files],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = np.load(tmp_path / "o.npz")
    for i, k in enumerate(keys):
        ref = exported[k][2][:10]
        assert np.abs(out[str(i)] - ref).max() <= 1e-4 * np.abs(ref).max(), k


def test_reference_cnn(tmp_path):
    """The trained reference CNN, kmeans k=16, decode once: same top-1 as its decoded torch model."""
    from vqexport.zoo.cnn import TRAIN
    from vqexport.zoo.reference import _key, cache_dir

    path = cache_dir() / f"mnist_cnn-mnist5k-{_key('mnist5k', TRAIN)}.pt"
    if not path.exists():  # training it belongs to the zoo's tests, not here
        pytest.skip("reference CNN not trained on this machine")
    lm = load_model(path)
    cm = vqexport.compress(lm, "kmeans", k=16, seed=0, min_size=0)
    report = export_tflite(cm, tmp_path / "ref.tflite", model=lm)
    assert report["within_bound"]
    x = torch.from_numpy(np.random.default_rng(0).random((20, *lm.input["shape"][1:]), dtype=np.float32))
    with torch.no_grad():
        ref = to_torch(cm, lm)(x).numpy()
    got = run_litert(tmp_path / "ref.tflite", x)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    assert np.array_equal(got.argmax(1), ref.argmax(1))

"""One runner for every format (evaluate.runtimes) and the benchmark (evaluate.bench)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import vqexport
from vqexport import to_torch
from vqexport.errors import ConfigError, DataError, VqexportError
from vqexport.evaluate import EvalNote, bench
from vqexport.evaluate.runtimes import LiteRtRuntime, OrtRuntime, TorchRuntime, open_runtime
from vqexport.formats.onnx import export_dense_onnx, export_onnx

SPEC = {"shape": [1, 3, 8, 8], "layout": "NCHW", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


@pytest.fixture(scope="module")
def loaded():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 6 * 6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)).eval()
    lm = vqexport.load_model(module)
    lm.input, lm.labels = dict(SPEC), [str(i) for i in range(10)]
    return lm


@pytest.fixture(scope="module")
def onnx_files(loaded, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    cm = vqexport.compress(loaded, "kmeans", k=16, seed=0, min_size=0)
    export_onnx(cm, d / "vq.onnx", model=loaded)
    export_dense_onnx(loaded, d / "dense.onnx")
    return cm, d / "vq.onnx", d / "dense.onnx"


def _x(n=5):
    return np.random.default_rng(3).standard_normal((n, 3, 8, 8)).astype(np.float32)


def test_torch_and_onnx_runtimes_agree(loaded, onnx_files):
    cm, vq, dense = onnx_files
    rt_dense, rt_vq = open_runtime(dense, threads=1), open_runtime(vq)
    assert isinstance(rt_vq, OrtRuntime) and rt_vq.input_spec["std"] == SPEC["std"] and rt_vq.labels[0] == "0"
    assert rt_vq.input_shape == SPEC["shape"]
    x = _x()
    decoded = TorchRuntime(to_torch(cm, loaded), cm.metadata["input"], cm.metadata["labels"])
    for want_rt, rt in ((open_runtime(loaded), rt_dense), (decoded, rt_vq)):
        want = want_rt.run(x)
        got = rt.run(x)
        assert got.shape == (5, 10) and np.allclose(got, want, atol=1e-5)
    assert isinstance(open_runtime(loaded.module), TorchRuntime)
    assert open_runtime(loaded).input_spec == SPEC


def test_runtime_paths(tmp_path, loaded, onnx_files):
    cm, vq, _ = onnx_files
    with pytest.raises(VqexportError, match="no such file"):
        open_runtime(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(VqexportError, match="ONNX Runtime cannot load"):
        open_runtime(bad)
    with pytest.raises(VqexportError, match="NCHW"):
        open_runtime(vq).run(np.zeros((3, 8, 8), np.float32))


@pytest.fixture(scope="module")
def tflite_nhwc(tmp_path_factory):
    """A tiny NHWC .tflite straight from the converter (no vqexport metadata), and the function it computes."""
    litert_torch = pytest.importorskip("litert_torch")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                  torch.nn.Linear(6 * 6 * 4, 10)).eval()
    nhwc = litert_torch.to_channel_last_io(net, args=[0])
    buf = litert_torch.convert(nhwc, (torch.zeros(1, 8, 8, 3),)).model_content()
    path = tmp_path_factory.mktemp("tflite") / "m.tflite"
    path.write_bytes(buf)

    def reference(x_nchw):
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(x_nchw, dtype=np.float32))).numpy()

    return path, reference


def _with_metadata(src, dst, payload: bytes):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(src.read_bytes()), 0)
    b = schema.BufferT()
    b.data = np.frombuffer(payload, dtype=np.uint8)
    m.buffers.append(b)
    md = schema.MetadataT()
    md.name, md.buffer = "vqexport", len(m.buffers) - 1
    m.metadata = (m.metadata or []) + [md]
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))


@pytest.mark.tflite  # tflite_nhwc is made by litert-torch
def test_litert_nhwc_from_nchw(tflite_nhwc, tmp_path):
    path, reference = tflite_nhwc
    with pytest.warns(EvalNote, match=r"records no input layout; taking its input \[1, 8, 8, 3\] as NHWC"):
        rt = open_runtime(path, threads=1)
    assert isinstance(rt, LiteRtRuntime) and rt.channels_last and rt.layout_from == "guess"  # last dim 3 = channels
    assert rt.input_shape == [1, 3, 8, 8]
    x = _x(4)
    want = reference(x)
    assert np.allclose(rt.run(x[:1]), want[:1], atol=1e-4)
    assert np.allclose(rt.run(x), want, atol=1e-4)  # batch 4 through resize_tensor_input
    assert np.allclose(rt.run(x[1:2]), want[1:2], atol=1e-4)

    meta = {"labels": ["a"] * 10, "input": {**SPEC, "layout": "NHWC"}}
    tagged = tmp_path / "tagged.tflite"
    _with_metadata(path, tagged, json.dumps(meta).encode())
    from vqexport.formats.tflite.flatbuffer import read_info

    assert read_info(tagged) == meta
    assert read_info(path) is None
    rt = open_runtime(tagged)
    assert rt.channels_last and rt.labels == ["a"] * 10 and rt.input_spec["std"] == SPEC["std"]
    assert np.allclose(rt.run(x), want, atol=1e-4)
    r = bench.run_bench(tagged, runs=5, warmup=1, threads=1)
    assert r["format"] == "tflite" and r["input_shape"] == [1, 3, 8, 8] and r["output_shape"] == [1, 10]


def test_bench_onnx(onnx_files):
    _, vq, dense = onnx_files
    r = bench.run_bench(vq, runs=20, warmup=2, threads=1)
    for key in ("init_ms", "first_run_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "mean_ms", "peak_rss_mib"):
        assert r[key] > 0, key
    assert r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p95_ms"] <= r["max_ms"]
    assert r["runs"] == 20 and r["input_shape"] == [1, 3, 8, 8] and r["runtime"].startswith("onnxruntime")
    assert r["peak_rss_mib"] >= r["baseline_rss_mib"] > 0
    text = bench.format_bench(r)
    assert "p50" in text and "peak RSS" in text and str(vq) in text


def test_bench_torchscript_and_errors(tmp_path, loaded):
    from vqexport.zoo.reference import save_torchscript

    pt = tmp_path / "m.pt"
    save_torchscript(loaded.module, pt, {"input": SPEC})
    r = bench.measure(pt, runs=3, warmup=0)
    assert r["runtime"].startswith("torch") and r["output_shape"] == [1, 10]
    with pytest.raises(VqexportError, match="no such file"):
        bench.run_bench(tmp_path / "missing.onnx", runs=1)
    with pytest.raises(VqexportError):
        bench.run_bench(tmp_path / "x.onnx", runs=0)


def test_bench_main_json(onnx_files, capsys):
    _, vq, _ = onnx_files
    assert bench.main([str(vq), "--runs", "3", "--warmup", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 3
    assert bench.main([str(vq) + ".nope", "--runs", "1"]) == 2


@pytest.mark.tflite  # tflite_nhwc is made by litert-torch
def test_layout_flag_overrides_the_guess(tflite_nhwc):
    # Issue 14, item 6: the guess is announced, and --layout decides instead of it.
    path, reference = tflite_nhwc
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note: the user said it
        rt = open_runtime(path, layout="NHWC")
    assert rt.channels_last and rt.layout_from == "flag" and rt.input_shape == [1, 3, 8, 8]
    x = _x(2)
    assert np.allclose(rt.run(x), reference(x), atol=1e-4)
    rt = open_runtime(path, layout="NCHW")  # wrong for this file, but the user's word: fed untransposed
    assert not rt.channels_last and rt.input_shape == [1, 8, 8, 3]
    with pytest.raises(DataError, match=r"takes a batch NCHW \[1, 8, 8, 3\]"):
        rt.run(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ConfigError, match="use NCHW or NHWC"):
        open_runtime(path, layout="NWC")
    with pytest.warns(EvalNote, match="records no input layout"):  # passed on from bench's own process
        r = bench.run_bench(path, runs=2, warmup=0)
    assert r["input_shape"] == [1, 3, 8, 8] and r["native_input_shape"] == [1, 8, 8, 3] and r["input_layout"] == "NHWC"


def test_bench_input_shape_for_a_file_that_does_not_say(tmp_path):
    # Issue 14, item 13: bench --input-shape, for any rank; here an MLP saved without a shape.
    from conftest import cli

    pt = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(64, 10)).eval()), str(pt))
    code, out, err = cli("bench", pt, "--input-shape", "1,64", "--runs", "2", "--warmup", "0", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["input_shape"] == [1, 64] and r["output_shape"] == [1, 10] and r["input_layout"] == "NC"
    code, out, err = cli("bench", pt, "--runs", "1")
    assert code == 2 and err.count("\n") == 1 and "pass --input-shape" in err
    for bad in ("1,63", "0,64", "x", "1,-1"):  # a wrong shape, or one the model cannot take: one line
        code, out, err = cli("bench", pt, "--input-shape", bad, "--runs", "1")
        assert code == 2 and not out and err.count("\n") == 1 and err.startswith("vqexport: error: "), (bad, err)


@pytest.mark.tflite  # tflite_nhwc is made by litert-torch
def test_eval_announces_the_guess_on_stderr(tflite_nhwc, tmp_path):
    from conftest import cli

    path, _ = tflite_nhwc
    np.savez(tmp_path / "d.npz", x=_x(4), y=np.arange(4))
    code, out, err = cli("eval", path, "--data", tmp_path / "d.npz")
    assert code == 0 and err == (f"vqexport: note: {path} records no input layout; taking its input [1, 8, 8, 3] "
                                 "as NHWC (channels last, as TFLite does); pass --layout NCHW if it is not\n")
    for extra in (["--layout", "NHWC"], ["--quiet"]):
        code, out, err = cli("eval", path, "--data", tmp_path / "d.npz", *extra)
        assert code == 0 and err == "", (extra, err)

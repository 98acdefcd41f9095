"""ONNX export: valid graphs, small files, the same answers as torch, bit-exact decodes."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import vqexport  # noqa: E402
from vqexport import to_torch  # noqa: E402
from vqexport.errors import ConfigError  # noqa: E402
from vqexport.formats.onnx import export_dense_onnx, export_onnx  # noqa: E402
from vqexport.formats.onnx_decode import decode_subgraph, unpack_matrix  # noqa: E402
from vqexport.ir import CompressedTensor, dense_section, packed_section  # noqa: E402
from vqexport.methods.registry import decode  # noqa: E402

SPEC = {"shape": [1, 3, 8, 8], "layout": "NCHW", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
LABELS = [f"class{i}" for i in range(10)]


class Tokens(torch.nn.Module):
    """Linear layers on a [B, T, C] tensor: torch exports them as MatMul with W^T initializers."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc1 = torch.nn.Linear(8, 24)
        self.fc2 = torch.nn.Linear(24 * 64, 10)

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2)  # [B, 64, 8]
        return self.fc2(torch.relu(self.fc1(t)).flatten(1))


def _small(kind="seq"):
    torch.manual_seed(0)
    if kind == "tokens":
        module = Tokens()
    else:
        module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                     torch.nn.Linear(4 * 6 * 6, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    lm = vqexport.load_model(module.eval())
    lm.input, lm.labels, lm.arch = dict(SPEC), list(LABELS), None
    return lm


@pytest.fixture(scope="module")
def seq():
    return _small()


@pytest.fixture(scope="module")
def tokens():
    return _small("tokens")


CASES = [
    ("binary", {}),
    ("kmeans", {"k": 16}),
    ("kmeans", {"k": 5}),
    ("kmeans", {"k": 8}),  # 3-bit indices straddle bytes
    ("kmeans", {"k": 32}),  # 5 bits
    ("kmeans", {"k": 16, "codebook_dtype": "float16"}),
    ("pq", {"k": 8, "d": 4}),
    ("pq", {"k": 4, "d": 2, "rows": True}),
    ("rq", {"k": 8, "stages": 2}),
    ("svd", {"rank": 4}),
]


def _ids(case):
    method, kw = case
    return method + "".join(f"-{k}{v}" for k, v in kw.items())


def _ort(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _check_agreement(cm, model, path, n=100):
    sess = _ort(path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *cm.metadata["input"]["shape"][1:])).astype(np.float32)
    got = np.concatenate([sess.run(None, {"input": x[i:i + 25]})[0] for i in range(0, n, 25)])
    with torch.no_grad():
        want = to_torch(cm, model)(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert np.array_equal(got.argmax(1), want.argmax(1))
    for batch in (1, 7):  # dynamic batch
        assert sess.run(None, {"input": x[:batch]})[0].shape == (batch, want.shape[1])


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_export_every_method(seq, tmp_path, case):
    method, kw = case
    cm = vqexport.compress(seq, method, seed=0, **kw, min_size=0)
    path = tmp_path / "m.onnx"
    info = export_onnx(cm, path, model=seq)
    onnx.checker.check_model(str(path), full_check=True)
    assert info["bytes"] == path.stat().st_size
    assert info["ideal_bytes"] == cm.ideal_bits() / 8
    assert info["initializer_bytes"] <= 1.01 * info["ideal_bytes"] + 1024
    assert info["bytes"] <= 1.01 * info["ideal_bytes"] + 16 * 1024
    _check_agreement(cm, seq, path)


@pytest.mark.parametrize("case", [("kmeans", {"k": 16}), ("pq", {"k": 4, "d": 4}),
                                  ("pq", {"k": 4, "d": 2, "rows": True}), ("rq", {"k": 4, "stages": 3}),
                                  ("svd", {"rank": 3}), ("binary", {})], ids=_ids)
def test_transposed_weights(tokens, tmp_path, case):
    method, kw = case
    cm = vqexport.compress(tokens, method, seed=0, **kw, min_size=0)
    info = export_onnx(cm, tmp_path / "m.onnx", model=tokens)
    assert info["layers"]["fc1.weight"]["transposed"]  # MatMul(x, W^T)
    onnx.checker.check_model(str(tmp_path / "m.onnx"), full_check=True)
    assert info["bytes"] <= 1.01 * info["ideal_bytes"] + 16 * 1024
    _check_agreement(cm, tokens, tmp_path / "m.onnx", n=50)


def _weights_from_onnx(path, layers):
    """Run a copy of the graph whose extra outputs are the decoded weights."""
    model = onnx.load(str(path))
    for entry in layers.values():
        value = onnx.helper.make_tensor_value_info(entry["initializer"], onnx.TensorProto.FLOAT, None)
        model.graph.output.append(value)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    shape = json.loads({p.key: p.value for p in model.metadata_props}["input"])["shape"]
    outs = sess.run(None, {"input": np.zeros(shape, np.float32)})
    return {name: outs[1 + i] for i, name in enumerate(layers)}


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("kmeans", "pq", "rq", "binary")], ids=_ids)
@pytest.mark.parametrize("kind", ["seq", "tokens"])
def test_decoded_weights_bit_exact(seq, tokens, tmp_path, case, kind):
    method, kw = case
    lm = seq if kind == "seq" else tokens
    if method == "pq" and kind == "tokens":
        kw = {**kw, "d": 2}
    cm = vqexport.compress(lm, method, seed=0, **kw, min_size=0)
    info = export_onnx(cm, tmp_path / "m.onnx", model=lm)
    got = _weights_from_onnx(tmp_path / "m.onnx", info["layers"])
    for t in cm.compressed:
        want = decode(t).T if info["layers"][t.name]["transposed"] else decode(t)
        assert got[t.name].dtype == np.float32
        assert np.array_equal(got[t.name], want), t.name


def _run_subgraph(t, transposed=False):
    """A graph of only t's decode; its output is the weight."""
    nodes, inits = decode_subgraph(t, "w", transposed)
    shape = t.shape[::-1] if transposed else t.shape
    out = onnx.helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, shape)
    graph = onnx.helper.make_graph(nodes, "decode", [], [out], initializer=inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})[0]


@pytest.mark.parametrize("bits", list(range(1, 17)))
def test_unpack_every_width(bits):
    rng = np.random.default_rng(bits)
    k = 1 << bits
    m, n = 37, 29  # 1073 values: not a multiple of 8, so the last group is partial
    idx = rng.integers(0, k, size=m * n).astype(np.uint16)
    idx[:4] = [k - 1, 0, k - 1, k - 1]  # all ones next to zeros
    cb = rng.standard_normal(k).astype(np.float32)
    t = CompressedTensor("w", "kmeans", (m, n), {"codebook": dense_section("codebook", cb),
                                                 "indices": packed_section(idx, bits)}, k=k, bits=bits)
    assert np.array_equal(_run_subgraph(t), decode(t))
    assert np.array_equal(_run_subgraph(t, transposed=True), decode(t).T)


def test_unpack_matrix_is_exact_in_float32():
    for bits in range(1, 17):
        m = unpack_matrix(bits).astype(np.float64)
        assert np.array_equal(m.astype(np.float32).astype(np.float64), m)
        words = 255.0 * m.sum(axis=0)  # the largest value any column can reach
        assert (words < 2 ** 24).all()


def test_metadata_and_names(seq, tmp_path):
    cm = vqexport.compress(seq, "kmeans", k=4, min_size=0)
    export_onnx(cm, tmp_path / "m.onnx", model=seq)
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert model.ir_version <= 10 and model.opset_import[0].version in (17, 18)
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["vqexport"]["input"]["layout"] == "NCHW" and props["vqexport"]["input"]["std"] == SPEC["std"]
    assert props["labels"] == LABELS and props["input"]["shape"] == SPEC["shape"]
    assert props["vqexport"]["config"]["method"] == "kmeans"
    # the payload is stored packed, not as an index-sized tensor
    biggest = max(model.graph.initializer, key=lambda i: len(i.raw_data))
    assert len(biggest.raw_data) < 4 * 144 * 64 // 4


def test_dense_baseline(seq, tmp_path):
    info = export_dense_onnx(seq, tmp_path / "d.onnx")
    onnx.checker.check_model(str(tmp_path / "d.onnx"), full_check=True)
    model = onnx.load(str(tmp_path / "d.onnx"))
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["labels"] == LABELS and props["input"]["shape"] == SPEC["shape"]
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = seq.module(torch.from_numpy(x)).numpy()
    assert np.allclose(_ort(tmp_path / "d.onnx").run(None, {"input": x})[0], want, atol=1e-5)
    assert info["initializer_bytes"] >= 4 * (144 * 64 + 64 * 10)


def test_missing_input_shape(seq, tmp_path):
    cm = vqexport.compress(seq, "kmeans", k=4, min_size=0)
    del cm.metadata["input"]
    with pytest.raises(ConfigError, match="--input-shape"):
        export_onnx(cm, tmp_path / "m.onnx", model=seq)
    assert not (tmp_path / "m.onnx").exists()
    info = export_onnx(cm, tmp_path / "m.onnx", model=seq, input_shape=[1, 3, 8, 8])
    assert info["bytes"] > 0


def test_via_api(seq, tmp_path):
    cm = vqexport.compress(seq, "kmeans", k=4, min_size=0)
    info = vqexport.to_onnx(cm, tmp_path / "m.onnx", model=seq, opset=18)
    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == 18
    _check_agreement(cm, seq, tmp_path / "m.onnx", n=25)
    assert info["opset"] == 18


@pytest.mark.slow  # the trained reference CNN
def test_reference_model(tmp_path):
    zoo = pytest.importorskip("vqexport.zoo")
    path = zoo.reference.cache_dir()
    if not any(path.glob("mnist_cnn-*.pt")):
        pytest.skip("the reference CNN is not trained yet (vqexport.zoo.reference_model())")
    lm = zoo.reference_model()
    cm = vqexport.compress(lm, "pq", k=16, d=4, seed=0, min_size=0)
    info = export_onnx(cm, tmp_path / "ref.onnx", model=lm)
    onnx.checker.check_model(str(tmp_path / "ref.onnx"), full_check=True)
    assert info["bytes"] <= 1.01 * info["ideal_bytes"] + 16 * 1024
    _check_agreement(cm, lm, tmp_path / "ref.onnx", n=100)


@pytest.mark.parametrize("case", [("kmeans", {"k": 5}), ("pq", {"k": 4, "d": 2, "rows": True}),
                                  ("rq", {"k": 4, "stages": 3}), ("svd", {"rank": 3}),
                                  ("kmeans", {"k": 16, "codebook_dtype": "float16"})], ids=_ids)
def test_runtime_folds_the_decode(tokens, tmp_path, case):
    """Even ORT's basic level folds every decode node: the session runs the dense graph."""
    method, kw = case
    cm = vqexport.compress(tokens, method, seed=0, **kw, min_size=0)
    export_onnx(cm, tmp_path / "vq.onnx", model=tokens)
    export_dense_onnx(tokens, tmp_path / "dense.onnx")
    ops = {}
    for name in ("vq", "dense"):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(tmp_path / f"{name}.opt.onnx")
        ort.InferenceSession(str(tmp_path / f"{name}.onnx"), opts, providers=["CPUExecutionProvider"])
        ops[name] = [n.op_type for n in onnx.load(str(tmp_path / f"{name}.opt.onnx")).graph.node]
    assert ops["vq"] == ops["dense"]

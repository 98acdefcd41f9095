"""tools/anchors: the torch -> Keras weight port (tfmot's anchor needs the same model in Keras), and
the exact byte count of coremltools' palettized tensors in tools/anchors_testbed.py."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_tool, tf216_python

ROOT = Path(__file__).resolve().parents[1]


def _port():
    return load_tool("anchors/keras_port.py")


def _net(seed: int):
    """Both reference shapes in one: a stride-2 depthwise block with BatchNorm, and a dense head on a
    flattened 8 x 7 x 7 map (non-square in channels, so a wrong column order cannot pass)."""
    nn = torch.nn
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 6, 3, 2, 1, groups=6, bias=False), nn.BatchNorm2d(6), nn.ReLU6(),
            nn.Conv2d(6, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(8 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 10))
        for m in net.modules():  # running statistics away from 0/1, so a BatchNorm mix-up shows
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.3, 0.3)
    return net.eval()


def test_linear_kernel_permutation_round_trips_and_matches_flatten_order():
    port = _port()
    rng = np.random.default_rng(0)
    c, h, w = 3, 2, 4
    weight = rng.normal(size=(5, c * h * w)).astype(np.float32)
    fmap = rng.normal(size=(c, h, w)).astype(np.float32)
    kernel = port.linear_kernel(weight, (c, h, w))
    # torch: weight @ flatten(C,H,W); Keras: flatten(H,W,C) @ kernel; the same numbers.
    np.testing.assert_allclose(fmap.transpose(1, 2, 0).ravel() @ kernel, weight @ fmap.ravel(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(port.torch_weight(kernel, (c, h, w)), weight)
    assert not np.allclose(weight.T, kernel)  # the permutation is not the identity here
    with pytest.raises(ValueError, match="flattened map"):
        port.linear_kernel(weight, (c, h, w + 1))


@pytest.mark.tflite  # needs TF 2.16.1's venv
def test_keras_logits_match_torch(tmp_path):
    python = tf216_python()  # the Keras port runs in its tf_keras, as in tfmot's
    if python is None:
        pytest.skip("no TF 2.16.1 venv (.venv-tf216, which make test builds)")
    port = _port()
    net = _net(seed=1)
    layers, weights = port.describe_torch(net, (1, 28, 28))
    dense = [e for e in layers if e["kind"] == "Linear"]
    assert dense[0]["from_map"] == [8, 7, 7] and dense[1]["from_map"] is None
    x = np.random.default_rng(2).normal(size=(16, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    (tmp_path / "case.json").write_text(json.dumps({"layers": layers, "chw": [1, 28, 28],
                                                    "wrong": layers.index(dense[0])}))
    np.savez(tmp_path / "case.npz", __x__=x.transpose(0, 2, 3, 1), **weights)
    p = subprocess.run([python, str(ROOT / "tests" / "helpers" / "keras_port_run.py"), str(tmp_path / "case.json"),
                        str(tmp_path / "case.npz"), str(tmp_path / "out.npz")], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = np.load(tmp_path / "out.npz")
    assert np.abs(out["right"] - want).max() < 1e-4
    # Without the column permutation the first Dense reads the map in the wrong order.
    assert np.abs(out["wrong"] - want).max() > 1e-2


def test_describe_torch_refuses_unknown_layers():
    port = _port()
    with pytest.raises(ValueError, match="GELU has no Keras port"):
        port.describe_torch(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2), torch.nn.GELU()), (1, 2, 2))


def _testbed():
    return load_tool("anchors_testbed.py")


def test_exact_bytes_counts_index_bits_luts_and_float_tensors():
    tb = _testbed()
    rng = np.random.default_rng(0)
    lut = rng.normal(size=(2, 4)).astype(np.float32)  # 16 rows in 2 groups of 8, 2 bits each
    w = np.concatenate([lut[0][rng.integers(0, 4, (8, 10))], lut[1][rng.integers(0, 4, (8, 10))]])
    state = {"fc.weight": w, "fc.bias": np.zeros(16, np.float32)}
    pal = {"fc.weight": {"n_bits": 2, "group_size": 8, "lut_shape": [2, 1, 4, 1]}}
    # 160 weights x 2 bits + 2 LUTs x 4 entries x 32 bits + 16 float32 biases
    assert tb.exact_bytes(state, pal) == (160 * 2 + 2 * 4 * 32 + 16 * 32) // 8
    assert tb.exact_bytes(state, {}) == (160 + 16) * 4
    with pytest.raises(AssertionError, match="more than 4"):  # one LUT cannot hold both groups' values
        tb.exact_bytes(state, {"fc.weight": {"n_bits": 2, "group_size": None, "lut_shape": [1, 4, 1]}})
    with pytest.raises(AssertionError, match="not 2 tables"):
        tb.exact_bytes(state, {"fc.weight": dict(pal["fc.weight"], lut_shape=[1, 4, 1])})

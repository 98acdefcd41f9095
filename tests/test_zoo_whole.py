"""tools/zoo_whole.py: its weight error, the coremltools child's module shells, and the table with failures."""
import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import vqexport

from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_PY = Path(os.environ.get("VQEXPORT_ANCHORS_PYTHON", ROOT / ".venv-anchors" / "bin" / "python"))


def _tool():
    return load_tool("zoo_whole.py")


def test_weight_errors_are_mse_and_relative_norm():
    w = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    got = _tool().weight_errors({"w": w}, {"w": np.array([1.0, 2.0, 3.0, 3.0])})  # flat decode, reshaped
    assert got["w"][0] == pytest.approx(0.25)
    assert got["w"][1] == pytest.approx(1 / np.sqrt(30.0))


def test_decoded_tensors_give_compress_own_relative_error():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 5), torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 32)).eval()
    tool = _tool()
    for group in (0, 4):
        cm = vqexport.compress(net, "kmeans", k=16, seed=0, min_size=0, group_size=group)
        ref = {k: v.numpy() for k, v in net.state_dict().items()}
        errs = tool.weight_errors(ref, tool.decoded_tensors(cm))
        assert set(errs) == {"0.weight", "2.weight"}
        for name, (mse, rel) in errs.items():
            assert 0 < mse and rel == pytest.approx(cm.metadata["layers"][name]["rel_error"], abs=1e-5)


@pytest.mark.slow  # starts coremltools in its own venv (about 10 s)
@pytest.mark.skipif(not ANCHOR_PY.exists(), reason=f"no coremltools venv at {ANCHOR_PY} (VQEXPORT_ANCHORS_PYTHON)")
@pytest.mark.parametrize("granularity", ["per_tensor", "per_grouped_channel"])
def test_coreml_child_palettizes_exactly_the_named_tensors(tmp_path, granularity):
    rng = np.random.default_rng(0)
    ref = {"a.0.conv.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float32),
           "a.1.weight": rng.standard_normal((8, 1, 3, 3)).astype(np.float32),  # depthwise: groups=8
           "head.weight": rng.standard_normal((12, 40)).astype(np.float32)}
    kinds = {"a.0.conv.weight": {"kind": "conv2d", "groups": 1}, "a.1.weight": {"kind": "conv2d", "groups": 8},
             "head.weight": {"kind": "linear", "groups": 1}}
    info = _tool().anchor(ANCHOR_PY, ref, kinds, granularity, 4, tmp_path, 0)
    assert sorted(info["palettized"]) == sorted(kinds) and info["seconds"] > 0
    for name, w in info["weights"].items():
        assert w.shape == ref[name].shape
        rows = w.reshape(w.shape[0], -1)
        group = 4 if granularity == "per_grouped_channel" else w.shape[0]
        assert max(np.unique(rows[a:a + group]).size for a in range(0, w.shape[0], group)) <= 16
        assert 0 < np.mean((w - ref[name]) ** 2) < 0.1 * np.mean(ref[name] ** 2)
    assert not list(tmp_path.glob("anchor_*.npz"))  # its weights in and out are removed


def test_table_names_each_failure_and_keeps_the_rest():
    tool = _tool()
    rows = [{"model": "m1", "params": 1e6, "tensors": 2, "weights": 3, "compressed_pct": 90.0, "ideal_bytes": 2**20,
             "onnx_bytes": [8 * 2**20, 2**20], "ort": {"rel_diff": 1e-7, "top1": 3, "inputs": 3},
             "dense_tflite_bytes": 8 * 2**20, "compress_s": 1.0,
             "errors": {"load .tflite": "TfliteExportError: layer x.weight: folded"},
             "weights_cmp": {"per_tensor": {"ours_s": 1.0, "ours_tensors": 2, "ours": {"mse": 1e-5, "rel": 0.1}}}},
            {"model": "m2", "errors": {"run": "timed out after 10 s"}}]
    args = argparse.Namespace(group_size=16, seed=0, inputs=3)
    text = tool.render(rows, args, "python tools/zoo_whole.py", 60.0)
    m1 = next(ln for ln in text.splitlines() if ln.startswith("| m1 | 1.0"))
    assert "**8.00x**" in m1 and "8.00 / - | -" in m1 and "load .tflite: TfliteExportError: layer x.weight" in m1
    assert "| m2 |" in text and "run: timed out after 10 s" in text
    assert "| m1 | per tensor | 2 | 1.000e-05 | - |" in text and "anchor not run" in text

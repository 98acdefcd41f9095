"""The sweep: its points, paired measures, SVD at matched compression, and its outputs."""
import json

import numpy as np
import pytest
import torch

from vqexport.evaluate.sweep import best_within, run_sweep, svd_overrides

from conftest import TINY_CNN_INPUT, tiny_cnn


def _data(tmp_path, model):
    rng = np.random.default_rng(0)
    x = rng.random((200, 1, 12, 12), dtype=np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy((x - 0.5) / 0.25)).argmax(1).numpy()  # labels the model gets right
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return str(tmp_path / "d.npz")


def test_quick_sweep_writes_three_points_and_plots(tmp_path):
    from vqexport.zoo.reference import save_torchscript

    net = tiny_cnn()
    save_torchscript(net, tmp_path / "m.pt", {"input": TINY_CNN_INPUT})
    s = run_sweep(tmp_path / "m.pt", _data(tmp_path, net), tmp_path / "out", quick=True, quiet=True)
    assert [p["method"] for p in s["points"]] == ["kmeans", "pq", "svd"]
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(on_disk["points"]) == 3 and on_disk["baseline"]["top1"] == 1.0
    for p in s["points"]:
        assert p["layer_compression"] > 1 and 0 <= p["agree"] <= 1
        assert p["files"]["vqm"]["bytes"] > 0
    km = s["points"][0]
    assert km["snr_db"] > 15  # k=16 on a 144x64 layer keeps the logits close
    for png in ("accuracy_vs_compression.png", "size_vs_accuracy.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Highest whole-model compression" in (tmp_path / "out" / "results.md").read_text()


def test_svd_ranks_match_target_and_small_layers_stay_raw():
    import vqexport

    m = vqexport.load_model(tiny_cnn())
    ranks, notes, layers = svd_overrides(m, 8.0)
    assert ranks["4.weight"]["rank"] == int(64 * 144 / (8 * (64 + 144)))
    assert layers == ["4.weight"]  # the 10x64 classifier stays raw, and the notes say why
    assert "6.weight" not in ranks and "kept raw" in notes["6.weight"]


def test_best_within_one_point():
    pts = [{"method": "kmeans", "label": "a", "top1": 0.975, "model_compression": 8, "layer_compression": 8},
           {"method": "kmeans", "label": "b", "top1": 0.96, "model_compression": 20, "layer_compression": 20},
           {"method": "pq", "rows": False, "label": "c", "top1": 0.98, "model_compression": 15,
            "layer_compression": 15}]
    best = best_within(pts, 0.98, 0.01)
    assert best["kmeans"]["label"] == "a" and best["pq cols"]["label"] == "c"


@pytest.mark.slow  # a budget search inside a sweep, about 3 s
def test_budget_points_and_paired_correctness(tmp_path):
    from vqexport.zoo.reference import save_torchscript

    net = tiny_cnn()
    save_torchscript(net, tmp_path / "m.pt", {"input": TINY_CNN_INPUT})
    data = _data(tmp_path, net)
    s = run_sweep(tmp_path / "m.pt", data, tmp_path / "out", points=[{"method": "kmeans", "k": 4}],
                  svd_targets=[4], budget_rates=[3.0, 6.0, 1000.0], quiet=True)
    budget = [p for p in s["points"] if p["method"] == "budget"]
    assert [p["label"] for p in budget] == ["budget @3x", "budget @6x"]
    for p in budget:  # each budget point meets its whole-model rate, counted on the ideal payload
        assert p["model_compression"] >= p["target"] * 0.98 and "--override" in p["plan"]
    assert budget[1]["model_compression"] > budget[0]["model_compression"]
    assert "cannot be met" in s["unreachable"]["budget @1000x"]  # recorded, and the sweep goes on
    n = s["images"]
    assert set(s["correct"]) == {"uncompressed"} | {p["label"] for p in s["points"]}
    assert all(v.shape == (n,) and v.dtype == bool for v in s["correct"].values())
    assert s["correct"]["uncompressed"].all()  # the labels are the uncompressed model's own
    assert "correct" not in json.loads((tmp_path / "out" / "results.json").read_text())


@pytest.mark.slow  # trains on Fashion-MNIST on first use, then 10,000 images per point
def test_quick_sweep_on_fashion(tmp_path):
    """The paper-shaped CNN trained on Fashion-MNIST (cached; trained on first use, about 2 minutes)."""
    from vqexport.zoo.reference import reference_path

    s = run_sweep(reference_path("fashion"), "fashion", tmp_path / "out", quick=True, quiet=True)
    assert s["images"] == 10000 and s["baseline"]["top1"] > 0.85
    km = next(p for p in s["points"] if p["label"] == "kmeans k=16")
    assert abs(km["top1"] - s["baseline"]["top1"]) < 0.01 and km["agree"] > 0.97


def test_calibrated_sweep_marks_its_points(tmp_path):
    from vqexport.zoo.reference import save_torchscript

    net = tiny_cnn()
    save_torchscript(net, tmp_path / "m.pt", {"input": TINY_CNN_INPUT})
    data = _data(tmp_path, net)
    s = run_sweep(tmp_path / "m.pt", data, tmp_path / "out", points=[{"method": "kmeans", "k": 4},
                                                                     {"method": "rq", "k": 4, "stages": 2}],
                  svd_targets=[], quiet=True, calib=data, calib_images=64)
    marks = {p["method"]: p["calibrated"] for p in s["points"]}
    assert marks == {"kmeans": True, "rq": False, "svd": False}

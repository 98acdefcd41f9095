"""Data sets, accuracy and the reference CNN."""
import numpy as np
import pytest
from PIL import Image

import vqexport
from vqexport.errors import DataError
from vqexport.evaluate.accuracy import evaluate_file, topk
from vqexport.evaluate.datasets import digits, load_dataset, mnist5k

from conftest import run_cli


def test_mnist5k_split_is_fixed_and_disjoint():
    xtr, ytr = mnist5k("train")
    xte, yte = mnist5k("test")
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert 0 <= xte.min() and xte.max() <= 1
    # No test image is also a training image.
    train_rows = {r.tobytes() for r in xtr.reshape(4000, -1)}
    assert sum(r.tobytes() in train_rows for r in xte.reshape(1000, -1)) <= 5  # MNIST has a few duplicates
    assert np.array_equal(mnist5k("test")[1], yte)
    assert set(np.unique(yte)) == set(range(10))


def test_digits_are_upsampled_to_mnist_size():
    x, y = digits("test")
    assert x.shape[1:] == (1, 28, 28) and len(x) == len(y) == 360


def test_topk():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.5]])
    assert topk(logits, np.array([1, 2]), 1) == 0.5
    assert topk(logits, np.array([1, 2]), 2) == 1.0


def test_reference_cnn_reaches_target_accuracy():
    from vqexport.zoo import reference_model
    from vqexport.zoo.cnn import accuracy

    m = reference_model()
    x, y = mnist5k("test")
    assert accuracy(m.module, x, y) >= 0.975
    params = {k: v.numel() for k, v in m.module.state_dict().items()}
    dense = sum(params[n] for n in m.dense_layers())
    assert dense / sum(params.values()) >= 0.9


def test_eval_pt_and_vqm_on_the_same_images(torchscript_cnn, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((50, 1, 12, 12), dtype=np.float32)
    y = rng.integers(0, 10, 50)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cm = vqexport.compress(vqexport.load_model(torchscript_cnn), "kmeans", k=256)
    cm.save(tmp_path / "m.vqm")
    a = evaluate_file(torchscript_cnn, str(tmp_path / "d.npz"))
    b = evaluate_file(tmp_path / "m.vqm", str(tmp_path / "d.npz"), source=torchscript_cnn)
    assert a["images"] == b["images"] == 50
    assert abs(a["top1"] - b["top1"]) <= 0.04  # k=256 moves at most a couple of borderline images
    assert b["bytes"] < a["bytes"]


def test_image_folder(tmp_path, torchscript_cnn):
    for cls in ("0", "1"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((20, 20), 40 * i, np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    x, y = load_dataset(str(tmp_path / "imgs"), {"shape": [1, 1, 12, 12]})
    assert x.shape == (6, 1, 12, 12) and list(y) == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("case,expect", [
    ("empty", "holds no class folders"),
    ("noimages", "hold no images"),
    ("unreadable", "not a readable image"),
    ("npz_keys", "needs arrays 'x' and 'y'"),
    ("missing", "no such data set"),
])
def test_bad_data_is_named(tmp_path, case, expect):
    root = tmp_path / "data"
    root.mkdir()
    if case == "noimages":
        (root / "a").mkdir()
    if case == "unreadable":
        (root / "a").mkdir()
        (root / "a" / "x.png").write_bytes(b"not a png")
    if case == "npz_keys":
        np.savez(tmp_path / "d.npz", images=np.zeros(3))
        root = tmp_path / "d.npz"
    if case == "missing":
        root = tmp_path / "nothing"
    with pytest.raises(DataError, match=expect):
        load_dataset(str(root), {"shape": [1, 1, 12, 12]})


def test_eval_cli_bad_labels_exit_2(tmp_path, torchscript_cnn):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 1, 12, 12), np.float32), y=np.array([0, 1, 2, 42]))
    code, _, stderr = run_cli("eval", torchscript_cnn, "--data", tmp_path / "d.npz")
    assert code == 2 and "has label 42" in stderr and len(stderr.strip().splitlines()) == 1


def test_eval_cli_json(tmp_path, torchscript_cnn):
    import json

    np.savez(tmp_path / "d.npz", x=np.zeros((4, 1, 12, 12), np.float32), y=np.array([0, 1, 2, 3]))
    code, stdout, stderr = run_cli("eval", torchscript_cnn, "--data", tmp_path / "d.npz", "--json")
    assert code == 0, stderr
    r = json.loads(stdout)
    assert r["images"] == 4 and 0 <= r["top1"] <= 1 and r["top5"] >= r["top1"]


def test_training_is_reproducible_and_leaves_the_global_rng_alone():
    # Dropout draws from torch's global generator; the training seeds it inside fork_rng.
    import torch

    from vqexport.zoo.cnn import TRAIN
    from vqexport.zoo.train import train_reference

    cfg = {**TRAIN, "epochs": 1}
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, _ = train_reference("digits", cfg)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(456)  # a different global state must not change the result
    b, _ = train_reference("digits", cfg)
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name

"""Data sets, accuracy and the reference CNN."""
import re

import numpy as np
import pytest
from PIL import Image

import vqexport
from vqexport import write_vqm
from vqexport.errors import DataError
from vqexport.evaluate import EvalNote
from vqexport.evaluate.accuracy import evaluate_file, topk
from vqexport.evaluate.datasets import class_indices, digits, load_dataset, mnist5k, prepare

from conftest import cli, run_cli


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


@pytest.mark.slow  # trains the reference CNN on first use (about 6 minutes)
def test_reference_cnn_reaches_target_accuracy():
    from vqexport.zoo import reference_model
    from vqexport.zoo.train import accuracy

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
    cm = vqexport.compress(vqexport.load_model(torchscript_cnn), "kmeans", k=256, min_size=0)
    write_vqm(cm, tmp_path / "m.vqm")
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
    with pytest.warns(EvalNote, match="--scale 255"):
        x, y = load_dataset(str(tmp_path / "imgs"), [1, 1, 12, 12])
    assert x.shape == (6, 1, 12, 12) and list(y) == [0, 0, 0, 1, 1, 1]
    assert x.max() == 80  # pixels as given
    x255, _ = load_dataset(str(tmp_path / "imgs"), [1, 1, 12, 12], scale=255)
    assert np.array_equal(x255, x / np.float32(255))
    with pytest.raises(DataError, match="--input-shape"):
        load_dataset(str(tmp_path / "imgs"), None, scale=255)
    with pytest.raises(DataError, match=r"images \[N, C, H, W\]"):
        load_dataset(str(tmp_path / "imgs"), [1, 64], scale=255)


def test_folder_names_map_to_classes():
    assert class_indices(["0", "2", "10"]) == {"0": 0, "2": 2, "10": 10}  # numbers, not text order
    assert class_indices(["dog", "cat"], ["cat", "bird", "dog"]) == {"cat": 0, "dog": 2}  # the model's labels
    assert class_indices(["dog", "cat"]) == {"cat": 0, "dog": 1}  # else sorted, as ImageFolder


def test_prepare_without_mean_std_is_the_identity():
    # Issue 14, item 5: a .tflite's metadata holds "mean": null, which once became NaN.
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 5)).astype(np.float32)
    for spec in (None, {}, {"shape": [1, 2, 4, 5], "mean": None, "std": None}):
        assert np.array_equal(prepare(x, spec), x)
    got = prepare(x, {"mean": [1.0, 2.0], "std": [0.5, 4.0]})
    assert np.allclose(got[:, 1], (x[:, 1] - 2) / 4) and np.isfinite(got).all()
    mlp = np.ones((2, 3), np.float32)
    assert np.allclose(prepare(mlp, {"mean": [0.5], "std": [0.25]}), 2.0)  # rank 2: axis 1 still


def test_runtimes_never_feed_nan(torchscript_cnn):
    from vqexport.evaluate.runtimes import open_runtime

    rt = open_runtime(torchscript_cnn)
    x = np.zeros((2, 1, 12, 12), np.float32)
    assert rt.run(x).shape == (2, 10)
    for bad in (np.nan, np.inf):
        x[1, 0, 3, 3] = bad
        with pytest.raises(DataError, match="NaN or inf"):
            rt.run(x)


def test_npz_is_fed_as_given(tmp_path, torchscript_cnn):
    # Issue 14, item 7: x with a maximum above 1 was divided by 255 without a word.
    x = np.random.default_rng(0).uniform(-3, 300, (5, 1, 12, 12)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5))
    got, y = load_dataset(str(tmp_path / "d.npz"), [1, 1, 12, 12])
    assert np.array_equal(got, x) and list(y) == [0, 1, 2, 3, 4]
    got, _ = load_dataset(str(tmp_path / "d.npz"), [1, 1, 12, 12], scale=255)
    assert np.array_equal(got, x / np.float32(255))
    np.savez(tmp_path / "u8.npz", x=np.full((2, 12, 12), 200, np.uint8), y=np.arange(2))
    with pytest.warns(EvalNote, match="--scale 255"):
        got, _ = load_dataset(str(tmp_path / "u8.npz"), [1, 1, 12, 12])
    assert got.max() == 200
    # The numbers reach the model unchanged: the .pt's logits on x and on x / 255 differ, and eval follows x.
    a = evaluate_file(torchscript_cnn, str(tmp_path / "d.npz"))
    b = evaluate_file(torchscript_cnn, str(tmp_path / "d.npz"), scale=255)
    from vqexport.evaluate.accuracy import predict
    from vqexport.evaluate.runtimes import open_runtime

    rt = open_runtime(torchscript_cnn)
    assert a["top1"] == float(np.mean(predict(rt, x).argmax(1) == np.arange(5)))
    assert b["top1"] == float(np.mean(predict(rt, x / np.float32(255)).argmax(1) == np.arange(5)))
    assert a["scale"] is None and b["scale"] == 255


BAD_NPZ = {
    "negative": (dict(x=np.zeros((3, 1, 12, 12)), y=np.array([0, -1, 2])), "negative label -1"),
    "float_labels": (dict(x=np.zeros((3, 1, 12, 12)), y=np.array([0.0, 1.0, 2.0])), "integer class indices"),
    "2d_labels": (dict(x=np.zeros((3, 1, 12, 12)), y=np.zeros((3, 10), np.int64)), r"shape \[N\]"),
    "nan_x": (dict(x=np.full((3, 1, 12, 12), np.nan), y=np.arange(3)), "NaN or infinite"),
    "inf_x": (dict(x=np.full((3, 1, 12, 12), np.inf), y=np.arange(3)), "NaN or infinite"),
    "huge_x": (dict(x=np.full((3, 1, 12, 12), 1e300), y=np.arange(3)), "NaN or infinite"),
    "string_x": (dict(x=np.array([["a", "b"], ["c", "d"]]), y=np.arange(2)), "must hold numbers"),
    "string_y": (dict(x=np.zeros((2, 1, 12, 12)), y=np.array(["cat", "dog"])), "integer class indices"),
    "scalar_x": (dict(x=np.array(1.0), y=np.arange(1)), "at least 2 dimensions"),
    "scalar_y": (dict(x=np.zeros((1, 1, 12, 12)), y=np.array(3)), r"shape \[N\]"),
    "bool_y": (dict(x=np.zeros((2, 1, 12, 12)), y=np.array([True, False])), "integer class indices"),
    "lengths": (dict(x=np.zeros((3, 1, 12, 12)), y=np.arange(2)), "x has 3 items and y has 2"),
    "object": (dict(x=np.array([{}, []], dtype=object), y=np.arange(2)), "not a readable .npz"),
    "shape": (dict(x=np.zeros((3, 3, 12, 12)), y=np.arange(3)), r"its inputs are \(3, 12, 12\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_bad_npz_is_one_line_exit_2(tmp_path, torchscript_cnn, case):
    arrays, expect = BAD_NPZ[case]
    path = tmp_path / f"{case}.npz"
    np.savez(path, **arrays)
    code, out, err = cli("eval", torchscript_cnn, "--data", path)
    assert code == 2 and not out, err
    assert err.count("\n") == 1 and err.startswith(f"vqexport: error: {path}: "), err
    assert re.search(expect, err), err


def test_npy_named_npz_and_bad_scale(tmp_path, torchscript_cnn):
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    code, _, err = cli("eval", torchscript_cnn, "--data", tmp_path / "a.npz")
    assert code == 2 and err.count("\n") == 1 and "not an .npz archive" in err
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1, 12, 12)), y=np.arange(2))
    for scale in ("0", "-255", "nan", "inf"):
        code, _, err = cli("eval", torchscript_cnn, "--data", tmp_path / "d.npz", "--scale", scale)
        assert code == 2 and err.count("\n") == 1 and "--scale" in err, err
    code, _, err = cli("eval", torchscript_cnn, "--data", "digits", "--scale", "255")
    assert code == 2 and "already in [0, 1]" in err


def test_eval_vqm_with_a_source_whose_channels_do_not_fit(tmp_path):
    # Issue 14, item 11: a .vqm that records no input shape, fed data of the wrong channel count.
    import torch

    from conftest import tiny_cnn

    pt = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(tiny_cnn()), str(pt))
    assert cli("compress", pt, "--k", "16", "-o", tmp_path / "m.vqm", "--quiet")[0] == 0
    np.savez(tmp_path / "rgb.npz", x=np.zeros((4, 3, 12, 12), np.float32), y=np.arange(4))
    for model, extra in ((tmp_path / "m.vqm", ["--model", pt]), (pt, [])):
        code, out, err = cli("eval", model, *extra, "--data", tmp_path / "rgb.npz")
        assert code == 2 and not out
        assert err.count("\n") == 1 and err.startswith(f"vqexport: error: {model}: cannot run on inputs of shape"), err
    code, _, err = cli("eval", tmp_path / "m.vqm", "--model", pt, "--data", "mnist5k")  # 28x28, not 12x12
    assert code == 2 and err.count("\n") == 1 and "cannot run" in err, err


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
        load_dataset(str(root), [1, 1, 12, 12])


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


@pytest.mark.slow  # trains twice
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


def test_sweep_scale(tmp_path):
    # Issue 14, item 7: sweep feeds the data as given too, and divides it only with --scale.
    import torch

    from vqexport.evaluate.sweep import run_sweep
    from vqexport.zoo.reference import save_torchscript

    from conftest import TINY_CNN_INPUT, tiny_cnn

    net = tiny_cnn()
    save_torchscript(net, tmp_path / "m.pt", {"input": TINY_CNN_INPUT})
    x = np.random.default_rng(0).integers(0, 256, (100, 1, 12, 12)).astype(np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy((x / np.float32(255) - 0.5) / 0.25)).argmax(1).numpy()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    point = [{"method": "kmeans", "k": 256}]
    s = run_sweep(tmp_path / "m.pt", str(tmp_path / "d.npz"), tmp_path / "a", points=point, svd_targets=[2],
                  quiet=True, scale=255)
    assert s["baseline"]["top1"] == 1.0
    s = run_sweep(tmp_path / "m.pt", str(tmp_path / "d.npz"), tmp_path / "b", points=point, svd_targets=[2],
                  quiet=True)
    with torch.no_grad():
        as_given = net(torch.from_numpy((x - 0.5) / 0.25)).argmax(1).numpy()
    assert s["baseline"]["top1"] == float(np.mean(as_given == y)) < 0.9  # 0-255 fed to a model made for 0-1
    with pytest.raises(vqexport.errors.ConfigError, match="already in"):
        run_sweep(tmp_path / "m.pt", "digits", tmp_path / "c", points=point, quiet=True, scale=255)
    assert not (tmp_path / "c").exists()  # refused before any output

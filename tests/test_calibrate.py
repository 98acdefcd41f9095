"""Data-aware fitting (--calib): input statistics, the refit, bias correction, and their flags."""
import numpy as np
import pytest
import torch

import vqexport
from vqexport.calibrate import Calibration, output_error
from vqexport.calibrate.stats import collect
from vqexport.methods import registry
from vqexport.torch_bridge import decoded_state_dict

from conftest import cli


def _inputs(seed: int, n: int, width: int = 64) -> np.ndarray:
    """ReLU features with very different energies per column, and correlated: what a hidden layer sees."""
    mix = np.random.default_rng(0).normal(size=(width, width)) * np.geomspace(3.0, 0.01, width)[None, :]
    z = np.random.default_rng(seed).normal(size=(n, width))
    return np.maximum(z @ mix.T + 0.3, 0).astype(np.float32)


def _mlp(seed: int = 0, width: int = 64) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(width, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64)).eval()


def _held_out_error(model, cm, x: np.ndarray, layer: str) -> float:
    """||(W - W') x||^2 summed over held-out inputs x of the first layer."""
    w = model.state_dict()[layer].numpy().astype(np.float64)
    w2 = np.asarray(decoded_state_dict(cm)[layer], dtype=np.float64)
    return float(np.sum((x.astype(np.float64) @ (w - w2).T) ** 2))


@pytest.mark.parametrize("method,settings", [("kmeans", {"k": 4}), ("kmeans", {"k": 2}), ("binary", {}),
                                             ("pq", {"k": 16, "d": 4}), ("vq", {"k": 16, "d": 4}),
                                             ("kmeans", {"k": 4, "group_size": 32})])
def test_calibrated_fit_has_lower_output_error_on_held_out_inputs(method, settings):
    model = _mlp()
    x_cal, x_held = _inputs(1, 512), _inputs(2, 2000)
    plain = vqexport.compress(model, method, types=("linear",), min_size=0, **settings)
    calib = vqexport.compress(model, method, types=("linear",), min_size=0, calib=Calibration(x_cal), **settings)
    before, after = (_held_out_error(model, cm, x_held, "0.weight") for cm in (plain, calib))
    assert after < 0.8 * before, (method, before, after)
    t = calib["0.weight"]
    assert t.bits == plain["0.weight"].bits and t.ideal_bits == plain["0.weight"].ideal_bits
    if method in ("kmeans", "binary"):  # still at most k values per codebook
        w = registry.decode(t).reshape(t.groups, -1)
        assert all(len(np.unique(row)) <= t.k for row in w)
    record = calib.metadata["calibration"]
    assert record["images"] == 512 and record["feedback"] is True
    layer = calib.metadata["layers"]["0.weight"]
    assert layer["rel_output_error"] < layer["rel_output_error_plain"]


def test_calibrated_file_round_trips(tmp_path):
    model = _mlp()
    cm = vqexport.compress(model, "kmeans", k=4, types=("linear",), min_size=0, calib=Calibration(_inputs(1, 256)))
    vqexport.write_vqm(cm, tmp_path / "m.vqm")
    back = vqexport.read_vqm(tmp_path / "m.vqm")
    for name in ("0.weight", "2.weight"):
        assert np.array_equal(registry.decode(back[name]), registry.decode(cm[name]))
    assert back.metadata["calibration"]["data"] == "<array>"


def _convnet() -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=(1, 2), dilation=(1, 2), groups=8), torch.nn.ReLU(),  # depthwise
            torch.nn.Conv2d(8, 12, (1, 3), groups=2), torch.nn.ReLU(),  # grouped, non-square
            torch.nn.Flatten(), torch.nn.LazyLinear(10)).eval()


def _conv_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, 9, 11)).astype(np.float32)


def test_conv_statistics_give_the_layers_true_output_error():
    """tr((W - W') H (W - W')^T) * count from the im2col statistics equals the sum of squared output
    differences of the conv itself: patches, channel order, groups, stride, padding and dilation agree."""
    net = _convnet()
    x = _conv_images(20)
    net(torch.from_numpy(x))  # materialise the lazy layer
    names = ["0.weight", "2.weight", "4.weight", "7.weight"]
    stats, why = collect(net, x, names)
    assert not why and set(stats) == set(names)
    r = np.random.default_rng(3)
    acts = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: acts.__setitem__(n, i[0])) for n, m in net.named_children()]
    with torch.no_grad():
        net(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    for name in names:
        mod = net.get_submodule(name[:-len(".weight")])
        w = mod.weight.detach().numpy()
        e = r.normal(size=w.shape).astype(np.float32) * 0.1
        with torch.no_grad():
            if isinstance(mod, torch.nn.Conv2d):
                diff = torch.nn.functional.conv2d(acts[name[0]], torch.from_numpy(e), None, mod.stride, mod.padding,
                                                  mod.dilation, mod.groups)
            else:
                diff = acts[name[0]] @ torch.from_numpy(e).T
        truth = float((diff.double() ** 2).sum())
        s = stats[name]
        rel = output_error(w, w - e, s.second)  # sqrt(tr(E H E^T) / tr(W H W^T))
        denom = float(sum(np.sum((w.reshape(w.shape[0], -1)[g * (w.shape[0] // s.outer.shape[0]):
                                                             (g + 1) * (w.shape[0] // s.outer.shape[0])] @ s.outer[g])
                                 * w.reshape(w.shape[0], -1)[g * (w.shape[0] // s.outer.shape[0]):
                                                             (g + 1) * (w.shape[0] // s.outer.shape[0])])
                          for g in range(s.outer.shape[0])))
        assert rel ** 2 * denom == pytest.approx(truth, rel=1e-4), name


@pytest.mark.slow  # converts the TorchScript module twice (torch's TorchScript-to-export converter)
def test_torchscript_and_eager_statistics_agree(tmp_path):
    """TorchScript has no modules to hook: its graph is converted and interpreted, with the same result."""
    net = _convnet()
    x = _conv_images(130)  # a full batch and a partial one: TorchScript is converted per batch size
    net(torch.from_numpy(x[:1]))
    names = ["0.weight", "2.weight", "4.weight", "7.weight"]
    eager, _ = collect(net, x, names)
    scripted = torch.jit.script(net)
    traced, why = collect(scripted, x, names)
    assert not why
    for name in names:
        assert traced[name].count == eager[name].count
        assert np.allclose(traced[name].outer, eager[name].outer, rtol=1e-5, atol=1e-3)
        assert np.allclose(traced[name].total, eager[name].total, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("method,settings,refit", [("kmeans", {"k": 2}, True), ("rq", {"k": 4, "stages": 1}, False),
                                                   ("svd", {"rank": 4}, False)])
def test_bias_correction_keeps_the_mean_output(method, settings, refit):
    """With or without the refit, and for methods it does not refit, the layer's mean output on the
    calibration inputs is the dense layer's."""
    model = _mlp()
    x = _inputs(1, 400)
    cm = vqexport.compress(model, method, types=("linear",), min_size=0,
                           calib=Calibration(x, bias_correction=True, refit=refit), **settings)
    dec = decoded_state_dict(cm)
    with torch.no_grad():
        dense = model[0](torch.from_numpy(x)).mean(0).numpy()
    ours = x.mean(0) @ np.asarray(dec["0.weight"]).T + np.asarray(dec["0.bias"])
    assert np.allclose(ours, dense, atol=1e-4)
    assert ("rel_output_error" in cm.metadata["layers"]["0.weight"]) == refit
    plain = vqexport.compress(model, method, types=("linear",), min_size=0, calib=Calibration(x, refit=refit,
                                                                                               bias_correction=False)) \
        if refit else None
    if plain is not None:
        assert np.array_equal(np.asarray(decoded_state_dict(plain)["0.bias"]), model[0].bias.detach().numpy())


def _npz(tmp_path, n: int = 80):
    """Images of the tiny CNN's 12x12 input, as a user's own .npz."""
    path = tmp_path / "data.npz"
    r = np.random.default_rng(0)
    np.savez(path, x=r.random((n, 1, 12, 12)).astype(np.float32), y=r.integers(0, 10, n))
    return path


def test_calibration_refuses_what_it_does_not_apply_to(torchscript_cnn, tmp_path):
    out = tmp_path / "never.vqm"
    code, _, err = cli("compress", torchscript_cnn, "--calib-images", "8", "-o", out)
    assert code == 2 and "--calib-images has no effect without --calib" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("compress", torchscript_cnn, "--method", "rq", "--calib", _npz(tmp_path), "--min-size", "0",
                       "-o", out)
    assert code == 2 and "--calib applies to binary, kmeans, pq (by columns) and vq" in err
    code, _, err = cli("compress", torchscript_cnn, "--calib", "digits", "-o", out)  # 28x28 for a 12x12 model
    assert code == 2 and "digits: its inputs are (1, 28, 28)" in err
    assert not out.exists()


def test_calibration_from_the_command_line(torchscript_cnn, tmp_path):
    out = tmp_path / "c.vqm"
    code, _, err = cli("--quiet", "compress", torchscript_cnn, "--method", "kmeans", "--k", "4", "--min-size", "0",
                       "--calib", _npz(tmp_path), "--calib-images", "64", "-o", out)
    assert code == 0, err
    meta = vqexport.read_vqm(out).metadata
    assert meta["calibration"]["data"].endswith("data.npz") and meta["calibration"]["images"] == 64
    assert all("rel_output_error" in layer for layer in meta["layers"].values())


def test_a_layer_too_wide_for_its_statistics_keeps_the_plain_fit(monkeypatch):
    from vqexport.calibrate import stats

    monkeypatch.setattr(stats, "MAX_COLUMNS", 100)  # the first layer has 64 columns, the second 128
    model = _mlp()
    with pytest.warns(UserWarning, match="2.weight fitted without calibration: calibration does not handle 128"):
        cm = vqexport.compress(model, "kmeans", k=4, types=("linear",), min_size=0,
                               calib=Calibration(_inputs(1, 64)))
    assert "rel_output_error" in cm.metadata["layers"]["0.weight"]
    assert "rel_output_error_plain" not in cm.metadata["layers"]["2.weight"]
    assert "2.weight" in cm.metadata["calibration"]["plain"]


def test_float16_codebooks_calibrate_too():
    model = _mlp()
    cm = vqexport.compress(model, "kmeans", k=4, types=("linear",), min_size=0, codebook_dtype="float16",
                           calib=Calibration(_inputs(1, 256)))
    t = cm["0.weight"]
    assert t.sections["codebook"].dtype == "float16"
    w = model.state_dict()["0.weight"].numpy()
    plain = vqexport.compress(model, "kmeans", k=4, types=("linear",), min_size=0, codebook_dtype="float16")
    x = _inputs(2, 2000)
    assert _held_out_error(model, cm, x, "0.weight") < _held_out_error(model, plain, x, "0.weight")
    assert w.shape == registry.decode(t).shape


@pytest.mark.slow  # measures every layer's sensitivity first
def test_the_budget_plan_is_fitted_with_calibration(torchscript_cnn, tmp_path):
    """The budget chooses each layer's setting (measured plainly); --calib fits the chosen plan."""
    data, out = _npz(tmp_path, 200), tmp_path / "b.vqm"
    code, _, err = cli("--quiet", "compress", torchscript_cnn, "--max-drop", "50", "--data", data, "--calib", data,
                       "--calib-images", "64", "-o", out)
    assert code == 0, err
    meta = vqexport.read_vqm(out).metadata
    assert meta["calibration"]["images"] == 64
    assert any("rel_output_error_plain" in layer for layer in meta["layers"].values())


def test_one_calibration_serves_two_models_with_their_own_statistics():
    x = _inputs(1, 128)
    shared = Calibration(x)
    first, second = _mlp(0), _mlp(1)
    vqexport.compress(first, "kmeans", k=4, types=("linear",), min_size=0, calib=shared)
    reused = vqexport.compress(second, "kmeans", k=4, types=("linear",), min_size=0, calib=shared)
    fresh = vqexport.compress(second, "kmeans", k=4, types=("linear",), min_size=0, calib=Calibration(x))
    for name in ("0.weight", "2.weight"):
        assert np.array_equal(registry.decode(reused[name]), registry.decode(fresh[name]))
        assert reused.metadata["layers"][name] == fresh.metadata["layers"][name]

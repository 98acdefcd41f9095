"""Every format computes the same function (issue 14, items 5, 6, 8 and 13).

For one small model without mean/std, `vqexport eval` of its .pt, .vqm, .onnx and .tflite
(all three decode modes) must give 100 % top-1 against labels taken from the decoded model's
own argmax, on an .npz of N(0, 1) inputs and, for an image model, on a folder of PNG files.
The models: a conv net on a non-square 1x10x14 input, an MLP on 64 features (rank 2) and a
Conv1d net on 4x20 (rank 3), each saved as plain TorchScript and exported with --input-shape.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import vqexport
from vqexport import to_torch

from conftest import cli

pytestmark = pytest.mark.tflite  # every model here is also exported to .tflite and run in LiteRT

DECODES = ("once", "every-run", "load")
N = 64
MARGIN = 1e-3  # inputs whose top two logits are closer than this are left out: float order may flip them
LEVELS = 8  # dense weights on 8 levels: kmeans k=16 reproduces them exactly, so the .pt agrees too


def conv2d():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 10 * 14, 48), torch.nn.ReLU(), torch.nn.Linear(48, 10))


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 10))


def conv1d():
    return torch.nn.Sequential(torch.nn.Conv1d(4, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(6 * 20, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10))


MODELS = {"conv2d": (conv2d, [1, 1, 10, 14]), "mlp": (mlp, [1, 64]), "conv1d": (conv1d, [1, 4, 20])}


def build(name: str, seed: int = 0) -> torch.nn.Module:
    make, _ = MODELS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = make().eval()
        levels = torch.linspace(-1, 1, LEVELS)
        with torch.no_grad():
            for layer in module:
                if isinstance(layer, torch.nn.Linear):
                    scale = 2.0 / layer.in_features ** 0.5
                    layer.weight.copy_(scale * levels[torch.randint(0, LEVELS, layer.weight.shape)])
    return module


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    """The model as TorchScript without any vqexport metadata, and its .vqm, .onnx and .tflite files."""
    name = request.param
    shape = MODELS[name][1]
    d = tmp_path_factory.mktemp(name)
    pt = d / "m.pt"
    torch.jit.save(torch.jit.script(build(name)), str(pt))
    flag = ",".join(map(str, shape))
    code, _, err = cli("compress", pt, "--input-shape", flag, "--k", "16", "-o", d / "m.vqm", "--quiet")
    assert code == 0, err
    code, _, err = cli("to-onnx", d / "m.vqm", "--model", pt, "-o", d / "m.onnx", "--quiet")
    assert code == 0, err
    for mode in DECODES:
        code, _, err = cli("to-tflite", d / "m.vqm", "--model", pt, "--decode", mode, "-o", d / f"m-{mode}.tflite",
                           "--quiet")
        assert code == 0, err
    files = [pt, d / "m.vqm", d / "m.onnx", *(d / f"m-{mode}.tflite" for mode in DECODES)]
    cm = vqexport.read_vqm(d / "m.vqm")
    decoded = to_torch(cm, vqexport.load_model(pt))
    return name, shape, d, files, decoded


def labelled(decoded, x: np.ndarray):
    """The inputs whose decoded argmax is clear, and that argmax as their labels."""
    with torch.inference_mode():
        logits = decoded(torch.from_numpy(x)).numpy()
    top2 = np.sort(logits, axis=1)[:, -2:]
    keep = top2[:, 1] - top2[:, 0] >= MARGIN
    y = logits.argmax(1)
    assert keep.sum() >= 0.75 * len(x) and len(set(y[keep])) >= 3  # a constant answer cannot pass
    return keep, y


def _eval(path, data, *extra):
    args = ["eval", path, "--data", data, "--json", *extra]
    if path.suffix == ".vqm":
        args += ["--model", path.with_suffix(".pt")]
    code, out, err = cli(*args)
    assert code == 0, f"{path.name}: {err}"
    return json.loads(out)


def test_every_format_agrees_on_npz(exported):
    name, shape, d, files, decoded = exported
    x = np.random.default_rng(1).standard_normal((N, *shape[1:])).astype(np.float32)
    keep, y = labelled(decoded, x)
    np.savez(d / "data.npz", x=x[keep], y=y[keep])
    for f in files:
        r = _eval(f, d / "data.npz")
        assert r["images"] == int(keep.sum())
        assert r["top1"] == 1.0, f"{f.name}: top-1 {r['top1']:.3f}"
        assert r["input_shape"] == shape


@pytest.mark.parametrize("exported", ["conv2d"], indirect=True)  # an image folder is for image models
def test_every_format_agrees_on_an_image_folder(exported):
    name, shape, d, files, decoded = exported
    pixels = np.random.default_rng(2).integers(0, 256, (N, *shape[2:]), dtype=np.uint8)
    x = pixels.astype(np.float32)[:, None] / np.float32(255)
    keep, y = labelled(decoded, x)
    root = d / "images"
    for cls in range(10):  # every class has a folder, even one no image falls in
        (root / str(cls)).mkdir(parents=True)
    for i in np.flatnonzero(keep):
        Image.fromarray(pixels[i]).save(root / str(y[i]) / f"{i}.png")
    for f in files:
        # A folder's images are resized to the model's input, which plain TorchScript does not record.
        extra = ["--input-shape", ",".join(map(str, shape))] if f.suffix == ".pt" else []
        r = _eval(f, root, "--scale", "255", *extra)
        assert r["images"] == int(keep.sum())
        assert r["top1"] == 1.0, f"{f.name}: top-1 {r['top1']:.3f}"


def test_tflite_metadata_records_the_layout(exported):
    from vqexport.formats.tflite.flatbuffer import read_info

    name, shape, d, files, _ = exported
    spec = read_info(d / "m-once.tflite")["input"]
    want = {"conv2d": ("NHWC", [1, 10, 14, 1], "NCHW"), "mlp": ("NC", [1, 64], "NC"),
            "conv1d": ("NWC", [1, 20, 4], "NCW")}[name]
    assert (spec["layout"], spec["shape"], spec["source_layout"]) == want
    assert spec["source_shape"] == shape and spec["mean"] is None and spec["std"] is None


def test_bench_every_format(exported):
    name, shape, d, files, _ = exported
    flag = ",".join(map(str, shape))
    for f in (files[0], d / "m.onnx", d / "m-once.tflite", d / "m-load.tflite"):  # bench takes no --model for a .vqm
        extra = ["--input-shape", flag] if f.suffix == ".pt" else []  # plain TorchScript does not say its shape
        code, out, err = cli("bench", f, "--runs", "2", "--warmup", "0", "--json", *extra)
        assert code == 0, f"{f.name}: {err}"
        r = json.loads(out)
        assert r["input_shape"] == shape and r["output_shape"] == [1, 10] and r["p50_ms"] > 0


def test_bench_asks_for_the_shape_it_cannot_know(exported):
    name, shape, d, files, _ = exported
    code, out, err = cli("bench", files[0], "--runs", "1")
    assert code == 2 and not out
    assert err.count("\n") == 1 and "--input-shape" in err and str(files[0]) in err

"""Codebook fine-tuning: the entry maps, the training, and the command."""
import numpy as np
import pytest
import torch

import vqexport
from vqexport.finetune import FinetuneConfig, entry_maps, finetune
from vqexport.methods import registry
from vqexport.torch_bridge import to_torch

from conftest import cli


@pytest.mark.parametrize("method,settings", [("binary", {}), ("binary", {"group_size": 8}), ("kmeans", {"k": 4}),
                                             ("kmeans", {"k": 4, "group_size": 16}), ("pq", {"k": 4, "d": 2}),
                                             ("pq", {"k": 4, "d": 2, "rows": True}),
                                             ("pq", {"k": 4, "d": 2, "group_size": 16}), ("vq", {"k": 8, "d": 4}),
                                             ("rq", {"k": 4, "stages": 3})])
def test_entry_maps_rebuild_the_reference_decode(method, settings, rng):
    w = rng.normal(size=(32, 3, 2, 4)).astype(np.float32)
    t = registry.get(method).fit(w, registry.config(method, **settings), 0)
    cb = t.codebook().reshape(-1).astype(np.float64)
    rebuilt = sum(cb[m] for m in entry_maps(t))
    assert np.allclose(rebuilt, registry.decode(t), rtol=0, atol=1e-6)


def _task(seed: int, n: int = 1200):
    """A 4-class problem an MLP learns well: labels from a fixed random linear map of the inputs."""
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 24)).astype(np.float32)
    y = (x @ np.random.default_rng(99).normal(size=(24, 4))).argmax(1)
    return x, y


def _trained_mlp():
    x, y = _task(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(24, 96), torch.nn.ReLU(), torch.nn.Linear(96, 4))
        opt = torch.optim.Adam(net.parameters(), 1e-2)
        for _ in range(150):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
            opt.step()
    return net.eval()


def _loss(net, x, y) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)))


@pytest.mark.parametrize("method,settings", [("kmeans", {"k": 2}), ("binary", {}), ("pq", {"k": 4, "d": 4})])
def test_finetuning_lowers_the_loss_and_keeps_the_indices(method, settings):
    net = _trained_mlp()
    cm = vqexport.compress(net, method, min_size=0, types=("linear",), **settings)
    x, y = _task(1)
    before = _loss(to_torch(cm, net), x, y)
    tuned, report = finetune(cm, to_torch(cm, net), x, y, FinetuneConfig(epochs=3, lr=3e-3, batch=64, holdout=200))
    after = _loss(to_torch(tuned, net), x, y)
    assert after < 0.8 * before, (before, after)
    assert [e["epoch"] for e in report["epochs_run"]] == [1, 2, 3]
    for t in cm.compressed:
        new = tuned[t.name]
        assert new.sections["indices"].data.tobytes() == t.sections["indices"].data.tobytes()
        assert not np.array_equal(new.codebook(), t.codebook())
        values = registry.decode(new).reshape(new.groups, -1)
        if method != "pq":
            assert all(len(np.unique(v)) <= new.k for v in values)
        if method == "binary":
            assert np.array_equal(new.codebook()[..., 0], -new.codebook()[..., 1])
    assert tuned.metadata["finetune"]["epochs"] == 3


def test_finetuning_is_deterministic_given_the_seed():
    net = _trained_mlp()
    cm = vqexport.compress(net, "kmeans", k=4, min_size=0, types=("linear",))
    x, y = _task(1, 400)
    runs = [finetune(cm, to_torch(cm, net), x, y, FinetuneConfig(epochs=1, batch=32, seed=s, holdout=50))[0]
            for s in (3, 3, 4)]
    same = [np.array_equal(runs[0][t.name].codebook(), runs[i][t.name].codebook()) for i in (1, 2)
            for t in cm.compressed]
    assert same == [True, True, False, False]


def test_folded_batchnorm_stays_as_folded():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                  torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 3)).eval()
    net = torch.jit.script(net)  # TorchScript keeps its BatchNorm, neutralised (vqexport.fold)
    cm = vqexport.compress(net, "kmeans", k=4, min_size=0)
    assert cm.metadata.get("folded")
    r = np.random.default_rng(0)
    x, y = r.normal(size=(300, 1, 8, 8)).astype(np.float32), r.integers(0, 3, 300)
    tuned, _ = finetune(cm, to_torch(cm, net), x, y, FinetuneConfig(epochs=1, lr=1e-2, batch=50, holdout=0))
    for name in ("1.weight", "1.bias", "1.running_mean", "1.running_var"):
        assert np.array_equal(tuned[name].sections["raw"].data, cm[name].sections["raw"].data), name
    assert not np.array_equal(tuned["0.bias"].sections["raw"].data, cm["0.bias"].sections["raw"].data)


def test_finetune_command(torchscript_cnn, tmp_path):
    r = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=r.random((120, 1, 12, 12)).astype(np.float32), y=r.integers(0, 10, 120))
    vqm, out = tmp_path / "m.vqm", tmp_path / "t.vqm"
    assert cli("--quiet", "compress", torchscript_cnn, "--min-size", "0", "--k", "4", "-o", vqm)[0] == 0
    code, stdout, err = cli("--quiet", "finetune", vqm, "--model", torchscript_cnn, "--data", data, "--epochs", "2",
                            "--holdout", "20", "-o", out, "--json")
    assert code == 0, err
    import json

    report = json.loads(stdout)
    assert report["train_images"] == 100 and len(report["epochs_run"]) == 2
    assert vqexport.read_vqm(out).metadata["finetune"]["epochs"] == 2
    code, _, err = cli("compress", torchscript_cnn, "--finetune-epochs", "2", "-o", tmp_path / "x.vqm")
    assert code == 2 and "--finetune-epochs has no effect without --finetune-data" in err
    # given, even at its default value: the flag itself does nothing here
    code, _, err = cli("compress", torchscript_cnn, "--lr", "1e-4", "-o", tmp_path / "x.vqm")
    assert code == 2 and "--lr has no effect without --finetune-data" in err and not (tmp_path / "x.vqm").exists()
    svd = tmp_path / "s.vqm"
    assert cli("--quiet", "compress", torchscript_cnn, "--method", "svd", "--rank", "2", "--min-size", "0",
               "-o", svd)[0] == 0
    code, _, err = cli("finetune", svd, "--model", torchscript_cnn, "--data", data, "-o", tmp_path / "y.vqm")
    assert code == 2 and "finetune applies to binary, kmeans, pq, vq, rq layers" in err
    assert not (tmp_path / "y.vqm").exists()
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=r.random((40, 1, 12, 12)).astype(np.float32), y=np.full(40, 12))  # the model has 10 outputs
    code, _, err = cli("finetune", vqm, "--model", torchscript_cnn, "--data", bad, "-o", tmp_path / "z.vqm")
    assert code == 2 and "has label 12, but the model has 10 outputs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "z.vqm").exists()

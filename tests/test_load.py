"""Safe loading: TorchScript, torch.export, state_dict + arch; pickles only when trusted."""
import pytest
import torch

import vqexport
from vqexport import to_torch, write_vqm
from vqexport.errors import LoadError

from conftest import tiny_cnn, tiny_mlp


def test_torchscript_keeps_labels_and_input(torchscript_cnn):
    m = vqexport.load_model(torchscript_cnn)
    assert m.kind == "torchscript"
    assert m.input["shape"] == [1, 1, 12, 12]
    assert m.labels[3] == "3"
    assert m.dense_layers() == ["4.weight", "6.weight"]
    assert len(m.sha256) == 64


def test_torch_export_program(tmp_path):
    net = tiny_cnn()
    ep = torch.export.export(net, (torch.randn(1, 1, 12, 12),))
    torch.export.save(ep, tmp_path / "m.pt2")
    m = vqexport.load_model(tmp_path / "m.pt2")
    assert m.kind == "export"
    assert m.dense_layers() == ["4.weight", "6.weight"]
    cm = vqexport.compress(m, "kmeans", k=4, min_size=0)
    x = torch.randn(2, 1, 12, 12)
    assert to_torch(cm, m)(x).shape == (2, 10)


def test_state_dict_with_torchvision_arch(tmp_path):
    import torchvision

    net = torchvision.models.mobilenet_v3_small(num_classes=7)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    m = vqexport.load_model(tmp_path / "sd.pt", arch="torchvision:mobilenet_v3_small")
    assert m.kind == "state_dict" and m.input["shape"] == [1, 3, 224, 224]
    assert m.labels is None  # 7 classes: ImageNet's names would be wrong
    assert m.dense_layers() == ["classifier.0.weight", "classifier.3.weight"]
    # Every tensor is the file's own value (built on meta, then assigned): nothing left random or meta.
    for name, value in net.state_dict().items():
        got = m.module.state_dict()[name]
        assert not got.is_meta and torch.equal(got, value), name
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(m.module(x), net.eval()(x))


def test_state_dict_in_a_fresh_process(tmp_path):
    # torchvision is imported for the first time by the loader here (in the test process it
    # is imported already): importing it under torch.device("meta") once broke the import.
    import torchvision

    from conftest import run_cli

    torch.save(torchvision.models.mobilenet_v3_small(num_classes=7).state_dict(), tmp_path / "sd.pt")
    code, stdout, stderr = run_cli("compress", tmp_path / "sd.pt", "--arch", "torchvision:mobilenet_v3_small",
                                   "--method", "kmeans", "--k", "4", "-o", tmp_path / "m.vqm", "--quiet")
    assert code == 0, stderr
    assert "classifier.0.weight" in stdout


def test_state_dict_with_package_class(tmp_path):
    from vqexport.zoo.cnn import MnistCNN

    torch.save(MnistCNN().state_dict(), tmp_path / "sd.pt")
    m = vqexport.load_model(tmp_path / "sd.pt", arch="vqexport.zoo.cnn:MnistCNN")
    assert m.dense_layers() == ["7.weight", "10.weight", "13.weight"]


def test_state_dict_without_arch_says_what_to_do(tmp_path):
    torch.save(tiny_mlp().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(LoadError, match="--arch"):
        vqexport.load_model(tmp_path / "sd.pt")


def test_pickle_refused_without_flag_and_loaded_with_it(tmp_path):
    torch.save(tiny_mlp(), tmp_path / "full.pt")
    with pytest.raises(LoadError, match="--trust-pickle"):
        vqexport.load_model(tmp_path / "full.pt")
    m = vqexport.load_model(tmp_path / "full.pt", trust_pickle=True)
    assert m.kind == "pickle" and m.dense_layers() == ["0.weight", "2.weight"]


def test_pickle_is_not_executed_without_flag(tmp_path):
    """A malicious pickle must not run: the marker file stays absent."""
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(LoadError):
        vqexport.load_model(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize("content,expect", [(b"not a model at all", "not a model file"), (b"", "not a model file")])
def test_not_a_model(tmp_path, content, expect):
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(LoadError, match=expect):
        vqexport.load_model(tmp_path / "x.pt")


def test_missing_file(tmp_path):
    with pytest.raises(LoadError, match="no such file"):
        vqexport.load_model(tmp_path / "nope.pt")


def test_bad_arch_strings(tmp_path):
    torch.save(tiny_mlp().state_dict(), tmp_path / "sd.pt")
    for arch, msg in [("nocolon", "expected torchvision"), ("torchvision:nonet", "no model named"),
                      ("no.such.module:X", "cannot import")]:
        with pytest.raises(LoadError, match=msg):
            vqexport.load_model(tmp_path / "sd.pt", arch=arch)


def test_to_torch_from_vqm_uses_arch(tmp_path):
    from vqexport.zoo.cnn import MnistCNN

    torch.save(MnistCNN().state_dict(), tmp_path / "sd.pt")
    m = vqexport.load_model(tmp_path / "sd.pt", arch="vqexport.zoo.cnn:MnistCNN")
    write_vqm(vqexport.compress(m, "kmeans", k=4, min_size=0), tmp_path / "m.vqm")
    rebuilt = to_torch(vqexport.read_vqm(tmp_path / "m.vqm"))
    assert rebuilt(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_to_torch_names_what_does_not_fit():
    # The copy is built around the .vqm's tensors; a model that does not match says which tensor.
    from vqexport.errors import LoadError

    cm = vqexport.compress(torch.nn.Sequential(torch.nn.Linear(8, 8)), "kmeans", k=4, seed=0, min_size=0)
    with pytest.raises(LoadError, match="the model's tensor 1.bias is not in the .vqm"):
        to_torch(cm, torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)))
    with pytest.raises(LoadError, match=r"0.weight: shape \(8, 8\) in the .vqm, \(4, 8\) in the model"):
        to_torch(cm, torch.nn.Sequential(torch.nn.Linear(8, 4)))
    net = torch.nn.Sequential(torch.nn.Linear(8, 8))
    copy = to_torch(cm, net)
    assert copy[0].weight is not net[0].weight and copy[0].bias.data_ptr() != net[0].bias.data_ptr()

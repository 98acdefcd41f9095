"""BatchNorm folded before quantizing (issue 10, item 3): the folded model computes what the original
did, the original is untouched, and the weight that reaches the ONNX file is the folded weight bit
for bit, so a quantized weight keeps exactly its k values through torch.onnx's own Conv+BN fusion."""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from vqexport.fold import FoldWarning, fold_batchnorm, neutral_var


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine terms far from identity, so that a missed or wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
                if m.affine:
                    m.weight.copy_(torch.randn(n, generator=g))
                    m.bias.copy_(torch.randn(n, generator=g))
    return model


def mixed_net(seed: int = 0) -> nn.Module:
    """Plain, grouped without bias, depthwise, transposed grouped conv, and Linear+BN1d: five pairs."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=4, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=8, padding=1), nn.BatchNorm2d(8, eps=1e-3), nn.ReLU(),
        nn.ConvTranspose2d(8, 6, 3, stride=2, groups=2, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10), nn.BatchNorm1d(10),
    )
    return randomize_bn(net, seed).eval()


MIXED_PAIRS = [("0", "1"), ("3", "4"), ("6", "7"), ("9", "10"), ("14", "15")]


def conv1d_net() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv1d(4, 6, 3), nn.BatchNorm1d(6), nn.ReLU(), nn.Conv1d(6, 5, 3, bias=False),
                        nn.BatchNorm1d(5, affine=False))
    return randomize_bn(net, 1).eval()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


def outputs(model, x):
    with torch.no_grad():
        return model(x)


def state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(before: dict, model) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def onnx_initializers(model, x) -> list[np.ndarray]:
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, do_constant_folding=True, opset_version=17)
    return [numpy_helper.to_array(t) for t in onnx.load_from_string(buf.getvalue()).graph.initializer]


def find_exact(weight: torch.Tensor, inits: list[np.ndarray]) -> bool:
    w = weight.detach().numpy()
    return any(a.shape == w.shape and a.dtype == w.dtype and a.tobytes() == w.tobytes() for a in inits)


def weight_of(model, layer: str) -> torch.Tensor:
    return dict(model.named_parameters())[f"{layer}.weight"]


# -- the small nets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("script", [False, True], ids=["eager", "torchscript"])
def test_mixed_net_folds_all_five_and_computes_the_same(script):
    net = mixed_net()
    model = torch.jit.script(net) if script else net
    x = torch.randn(4, 3, 12, 12)
    before, want = state(model), outputs(model, x)
    folded, pairs = fold_batchnorm(model)
    assert pairs == MIXED_PAIRS
    assert rel_err(want, outputs(folded, x)) < 1e-5
    assert_same_state(before, model)
    assert rel_err(want, outputs(model, x)) == 0.0
    if not script:
        assert all(isinstance(folded[int(bn)], nn.Identity) for _, bn in pairs)
        assert folded[3].bias is not None and model[3].bias is None  # a conv without bias gets one
    else:  # TorchScript keeps the BatchNorms, each an exact identity
        for _, bn in pairs:
            sd = folded.state_dict()
            assert torch.all(sd[f"{bn}.running_var"] + getattr(folded, bn).eps == 1.0)
            assert torch.all(sd[f"{bn}.running_mean"] == 0) and torch.all(sd[f"{bn}.weight"] == 1)


@pytest.mark.parametrize("script", [False, True], ids=["eager", "torchscript"])
def test_onnx_initializers_are_the_folded_weights_bit_for_bit(script):
    net = mixed_net()
    model = torch.jit.script(net) if script else net
    x = torch.randn(2, 3, 12, 12)
    folded, pairs = fold_batchnorm(model)
    inits = onnx_initializers(folded, x)
    for layer, _ in pairs:
        assert find_exact(weight_of(folded, layer), inits), layer
    # The check can fail: unfolded, the exporter fuses Conv+BN itself and the original conv weights are
    # gone (it leaves ConvTranspose and Gemm alone; a TFLite converter need not).
    unfolded = onnx_initializers(model, x)
    assert not any(find_exact(weight_of(model, layer), unfolded) for layer, _ in pairs[:3])


@pytest.mark.parametrize("script", [False, True], ids=["eager", "torchscript"])
def test_a_k4_weight_keeps_exactly_4_values_through_onnx(script):
    model = torch.jit.script(mixed_net()) if script else mixed_net()
    folded, pairs = fold_batchnorm(model)
    g = torch.Generator().manual_seed(3)
    codebook = torch.tensor([-0.31, -0.07, 0.05, 0.27])
    for layer, _ in pairs:
        w = weight_of(folded, layer)
        with torch.no_grad():
            w.copy_(codebook[torch.randint(0, 4, w.shape, generator=g)])
    inits = onnx_initializers(folded, torch.randn(2, 3, 12, 12))
    for layer, _ in pairs:
        w = weight_of(folded, layer)
        same = [a for a in inits if a.shape == tuple(w.shape) and a.tobytes() == w.detach().numpy().tobytes()]
        assert same and len(np.unique(same[0])) == 4, layer


def test_conv1d_and_affine_free_batchnorm():
    net = conv1d_net()
    x = torch.randn(3, 4, 16)
    folded, pairs = fold_batchnorm(net)
    assert pairs == [("0", "1"), ("3", "4")]
    assert rel_err(outputs(net, x), outputs(folded, x)) < 1e-5
    # TorchScript cannot give the bias-free conv a bias, and the affine-free BatchNorm has none to hold the shift.
    notes = []
    scripted, spairs = fold_batchnorm(torch.jit.script(net), notes)
    assert spairs == pairs[:1] and notes == ["4 after 3 not folded: neither has a bias to hold the shift"]
    assert rel_err(outputs(net, x), outputs(scripted, x)) < 1e-5


def test_torchscript_traced():
    net = mixed_net()
    x = torch.randn(2, 3, 12, 12)
    traced = torch.jit.trace(net, (x,))
    folded, pairs = fold_batchnorm(traced)
    assert pairs == MIXED_PAIRS and rel_err(outputs(net, x), outputs(folded, x)) < 1e-5


def test_torchscript_after_onnx_export_inlined_its_graph():
    """torch.onnx.export inlines a scripted module's forward in place, on the type that every later
    torch.jit.script of the same classes shares: the pairs must still be found there."""
    x = torch.randn(2, 3, 12, 12)
    onnx_initializers(torch.jit.script(mixed_net(seed=4)), x)
    net = mixed_net()
    folded, pairs = fold_batchnorm(torch.jit.script(net))
    assert pairs == MIXED_PAIRS and rel_err(outputs(net, x), outputs(folded, x)) < 1e-5


def test_torchscript_saved_and_loaded():
    net = mixed_net()
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    x = torch.randn(2, 3, 12, 12)
    folded, pairs = fold_batchnorm(loaded)
    assert pairs == MIXED_PAIRS and rel_err(outputs(net, x), outputs(folded, x)) < 1e-5


def test_torch_export_program():
    net = mixed_net()
    x = torch.randn(2, 3, 12, 12)
    gm = torch.export.export(net, (x,)).module()
    before = state(gm)
    folded, pairs = fold_batchnorm(gm)
    assert pairs == MIXED_PAIRS
    assert rel_err(outputs(net, x), outputs(folded, x)) < 1e-5
    assert_same_state(before, gm)


def test_torch_export_program_in_training_mode_folds_nothing():
    net = mixed_net().train()
    gm = torch.export.export(net, (torch.randn(2, 3, 12, 12),)).module()
    notes = []
    _, pairs = fold_batchnorm(gm, notes)
    assert pairs == [] and len(notes) == 5 and all("training mode" in n for n in notes)


# -- what must not fold -----------------------------------------------------------------------------

class SharedOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class ConvTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)) + self.conv(x)


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent: torch.fx cannot trace it
            x = -x
        return self.bn(self.conv(x))


@pytest.mark.parametrize("make", [SharedOutput, ConvTwice], ids=["output-used-twice", "conv-called-twice"])
@pytest.mark.parametrize("script", [False, True], ids=["eager", "torchscript"])
def test_a_layer_used_elsewhere_is_not_folded(make, script):
    net = randomize_bn(make()).eval()
    model = torch.jit.script(net) if script else net
    x = torch.randn(2, 3 if make is SharedOutput else 4, 8, 8)
    notes = []
    folded, pairs = fold_batchnorm(model, notes)
    assert pairs == []
    assert len(notes) == 1 and "used elsewhere" in notes[0] and "bn" in notes[0]
    assert torch.equal(outputs(net, x), outputs(folded, x))


def test_bn_after_a_non_conv_is_not_folded():
    net = randomize_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))).eval()
    notes = []
    for model in (net, torch.jit.script(net)):
        folded, pairs = fold_batchnorm(model, notes)
        assert pairs == [] and notes == []
        x = torch.randn(2, 3, 8, 8)
        assert torch.equal(outputs(net, x), outputs(folded, x))


def test_bn_without_running_stats_is_refused():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    for model in (net, torch.jit.script(net)):
        notes = []
        _, pairs = fold_batchnorm(model, notes)
        assert pairs == [] and len(notes) == 1 and "running statistics" in notes[0]


class Tied(nn.Module):
    """A depthwise conv whose weight another layer shares: folding would change that layer too."""

    def __init__(self):
        super().__init__()
        self.net, self.spare = mixed_net(), nn.Conv2d(8, 8, 3, groups=8)
        self.spare.weight = self.net[6].weight

    def forward(self, x):
        return self.net(x) + self.spare(x[:, :1].expand(-1, 8, -1, -1)).mean()


@pytest.mark.parametrize("script", [False, True], ids=["eager", "torchscript"])
def test_a_tensor_shared_with_another_name_is_not_folded(script):
    net = Tied()
    model = torch.jit.script(net) if script else net
    notes = []
    _, pairs = fold_batchnorm(model, notes)
    assert pairs == [(f"net.{a}", f"net.{b}") for a, b in MIXED_PAIRS if a != "6"]
    assert notes == ["net.7 after net.6 not folded: net.6.weight is shared with another layer"]


def test_untraceable_model_folds_nothing_and_warns():
    net = randomize_bn(Untraceable()).eval()
    with pytest.warns(FoldWarning, match="torch.fx cannot trace Untraceable"):
        folded, pairs = fold_batchnorm(net)
    assert pairs == []
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(outputs(net, x), outputs(folded, x))
    # TorchScript keeps the control flow in its graph, and the pair is still found there.
    scripted, spairs = fold_batchnorm(torch.jit.script(net))
    assert spairs == [("conv", "bn")] and rel_err(outputs(net, x), outputs(scripted, x)) < 1e-5


def test_train_mode_folds_running_stats_and_leaves_the_original_training():
    net = mixed_net().train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say about a model in train mode
        folded, pairs = fold_batchnorm(net)
    assert pairs == MIXED_PAIRS and net.training and not folded.training
    x = torch.randn(4, 3, 12, 12)
    assert rel_err(outputs(net.eval(), x), outputs(folded, x)) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.1, 1e-12, 3e-8])
def test_neutral_var_makes_var_plus_eps_exactly_one(eps, dtype):
    v = torch.tensor(neutral_var(eps, dtype), dtype=dtype)
    assert v + eps == 1.0 and (v + torch.tensor(eps, dtype=dtype)) == 1.0 and (v.double() + eps).to(dtype) == 1.0


# -- torchvision ------------------------------------------------------------------------------------

@pytest.mark.slow  # two torchvision networks, about 12 s
@pytest.mark.parametrize(("name", "n_pairs"), [("resnet18", 20), ("mobilenet_v2", 52)])
def test_torchvision_models(name, n_pairs):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = randomize_bn(torchvision.models.get_model(name, weights=None).eval(), seed=5)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    x = torch.randn(2, 3, 64, 64)
    before, want = state(net), outputs(net, x)
    folded, pairs = fold_batchnorm(net)
    assert len(pairs) == n_pairs == n_bn
    assert rel_err(want, outputs(folded, x)) < 1e-5
    assert_same_state(before, net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    inits = onnx_initializers(folded, x[:1])
    assert all(find_exact(weight_of(folded, layer), inits) for layer, _ in pairs)
    scripted, spairs = fold_batchnorm(torch.jit.script(net))
    assert sorted(spairs) == sorted(pairs)
    assert rel_err(want, outputs(scripted, x)) < 1e-5

"""The budget search: the plan meets the size on disk, trades size for sensitivity, and re-runs."""
import numpy as np
import pytest

import vqexport
from vqexport import write_vqm
from vqexport.budget import plan_budget
from vqexport.errors import ConfigError

from conftest import run_cli, tiny_mlp

pytestmark = pytest.mark.slow  # every test here reads a module fixture that trains an MLP (15 s on 2 busy cores)


@pytest.fixture(scope="module")
def mlp_and_data(tmp_path_factory):
    """A small MLP trained briefly on a learnable task, so layers differ in sensitivity."""
    import torch

    d = tmp_path_factory.mktemp("budget")
    rng = np.random.default_rng(0)
    x = rng.random((3000, 48), dtype=np.float32)
    y = (x[:, :10].argmax(1)).astype(np.int64)
    net = tiny_mlp(0, n_in=48, hidden=256, n_out=10)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(300):
        idx = torch.randint(0, len(x), (128,), generator=gen)
        loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    np.savez(d / "data.npz", x=x, y=y)
    from vqexport.zoo.reference import save_torchscript

    save_torchscript(net, d / "mlp.pt", {"input": {"shape": [1, 48], "layout": "NC"}})
    return vqexport.load_model(d / "mlp.pt"), str(d / "data.npz"), d


def test_target_size_is_met_on_disk(mlp_and_data, tmp_path):
    model, data, _ = mlp_and_data
    dense = sum(v.numel() * 4 for v in model.state_dict().values())
    target = dense // 6
    plan = plan_budget(model, data, target_bytes=target, images=500, holdout=500)
    assert 0 < plan.file_bytes <= target
    cm = vqexport.compress(model, config=plan.config)
    write_vqm(cm, tmp_path / "m.vqm")
    assert (tmp_path / "m.vqm").stat().st_size == plan.file_bytes  # the accounting is the file
    assert plan.file_bytes > 0.5 * target  # the budget is used, not thrown away


def test_more_room_costs_less(mlp_and_data):
    model, data, _ = mlp_and_data
    dense = sum(v.numel() * 4 for v in model.state_dict().values())
    tight = plan_budget(model, data, target_bytes=dense // 12, images=500, holdout=500)
    loose = plan_budget(model, data, target_bytes=dense // 3, images=500, holdout=500)
    cost = lambda p: sum(next(o.cost for o in p.options[n] if o.setting == s) for n, s in p.settings.items())  # noqa: E731
    assert tight.file_bytes <= loose.file_bytes
    assert cost(loose) <= cost(tight)
    for opts in loose.options.values():  # raw costs nothing; every candidate's cost is measured
        assert opts[0].setting == {"method": "raw"} and opts[0].cost == 0.0
        assert all(o.cost >= 0 for o in opts) and len(opts) > 3


def test_max_drop_is_respected_on_the_held_out_images(mlp_and_data):
    model, data, _ = mlp_and_data
    plan = plan_budget(model, data, max_drop=1.0, images=500, holdout=1000)
    assert plan.measured_drop is not None and plan.measured_drop <= 1.0
    assert any(s["method"] != "raw" for s in plan.settings.values())


def test_the_printed_flags_reproduce_the_plan(mlp_and_data, tmp_path):
    model, data, d = mlp_and_data
    dense = sum(v.numel() * 4 for v in model.state_dict().values())
    plan = plan_budget(model, data, target_bytes=dense // 6, images=500, holdout=500)
    write_vqm(vqexport.compress(model, config=plan.config), tmp_path / "api.vqm")
    code, _, err = run_cli("compress", d / "mlp.pt", *plan.override_args(), "-o", tmp_path / "cli.vqm", "--quiet")
    assert code == 0, err
    assert (tmp_path / "cli.vqm").read_bytes() == (tmp_path / "api.vqm").read_bytes()


def test_impossible_and_ambiguous_budgets_are_errors(mlp_and_data):
    model, data, _ = mlp_and_data
    with pytest.raises(ConfigError, match="cannot be met"):
        plan_budget(model, data, target_bytes=100, images=200, holdout=200)
    with pytest.raises(ConfigError, match="exactly one"):
        plan_budget(model, data, images=200)
    with pytest.raises(ConfigError, match="exactly one"):
        plan_budget(model, data, target_bytes=10_000, max_drop=1.0)
    with pytest.raises(ConfigError, match="already fits"):
        plan_budget(model, data, target_bytes=10 ** 9, images=200, holdout=200)


def test_fill_spends_what_the_price_search_leaves():
    from vqexport.budget import Option, _bits, _choose, _fill

    # Two layers; the hull corners are "both 1 bit" and "both 8 bits": with room for one layer at
    # 8 bits, the price search alone stays at the small corner, the fill upgrades one layer.
    opts = {n: [Option({"method": "raw"}, 3200, 0.0), Option({"k": 2}, 100, 1.0), Option({"k": 256}, 800, 0.1)]
            for n in ("a", "b")}
    cheap = _choose(opts, 1.0)
    assert _bits(cheap) == 200
    filled = _fill(opts, cheap, 900)
    assert _bits(filled) == 900 and sum(o.cost for o in filled.values()) == pytest.approx(1.1)
    assert _fill(opts, cheap, 200) == cheap  # no room: nothing moves

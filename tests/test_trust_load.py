"""Model files from strangers: nothing in them runs code or chooses code to import (issue 14).

Also the .pt2 commands that used to fail (eval, bench, sweep), the input shape taken from a
.pt2's example inputs and checked before compressing, and tied weights stored once.
"""
import io
import json
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import vqexport
from vqexport import to_torch, write_vqm
from vqexport.cli import main
from vqexport.errors import LoadError, VqexportError

from conftest import tiny_cnn, tiny_mlp


class Evil:
    """Unpickling this creates the file `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def one_line_error(capsys, code) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("vqexport: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    """A real torch.export archive of the tiny CNN, its .vqm, and 12x12 data as .npz."""
    d = tmp_path_factory.mktemp("pt2")
    program = torch.export.export(tiny_cnn(), (torch.randn(1, 1, 12, 12),))
    torch.export.save(program, d / "m.pt2")
    legacy(d / "m.pt2", d / "legacy.pt2", program)
    write_vqm(vqexport.compress(vqexport.load_model(d / "m.pt2"), "kmeans", k=4, min_size=0), d / "m.vqm")
    rng = np.random.default_rng(0)
    np.savez(d / "d.npz", x=rng.random((250, 1, 12, 12)).astype(np.float32), y=rng.integers(0, 10, 250))
    return d


def rewrite(src, dst, member_suffix, change):
    """Copy the zip `src` to `dst`, passing the member ending in `member_suffix` through change(bytes)."""
    hit = False
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(member_suffix):
                data, hit = change(data), True
            zout.writestr(info, data)
    assert hit, member_suffix


def legacy(src, dst, program):
    """`src` in torch 2.8's layout, which torch 2.9 still loads: the weights and the constants each
    one pickle (data/<kind>/model.pt) instead of raw tensor files described in JSON."""
    tables = {"weights": program.state_dict, "constants": program.constants}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = next(n for n in zin.namelist() if n.endswith("archive_format"))[: -len("archive_format")]
        for info in zin.infolist():
            if not any(info.filename.startswith(f"{root}data/{kind}/") for kind in tables):
                zout.writestr(info, zin.read(info))
        for kind, table in tables.items():
            buf = io.BytesIO()
            torch.save(dict(table), buf)
            zout.writestr(f"{root}data/{kind}/model.pt", buf.getvalue())


def evil_pickle(marker) -> bytes:
    buf = io.BytesIO()
    torch.save(Evil(marker), buf)
    return buf.getvalue()


def commands(path, d):
    return [["compress", path, "-o", d / "out.vqm"], ["eval", path, "--data", d / "d.npz"],
            ["to-onnx", path, "-o", d / "out.onnx"], ["eval", d / "m.vqm", "--model", path, "--data", d / "d.npz"]]


@pytest.mark.parametrize("member", ["data/weights/model.pt", "data/constants/model.pt",
                                    "data/sample_inputs/model.pt"])
def test_pt2_pickled_members_never_run(pt2, tmp_path, capsys, member):
    marker = tmp_path / "ran"
    rewrite(pt2 / ("m.pt2" if "sample" in member else "legacy.pt2"), tmp_path / "evil.pt2", member,
            lambda _: evil_pickle(marker))
    for argv in commands(tmp_path / "evil.pt2", pt2):
        err = one_line_error(capsys, main(["--quiet", *map(str, argv)]))
        assert "pickled Python object" in err and "--trust-pickle" in err and member in err, (argv, err)
        assert not marker.exists(), argv
    assert not (pt2 / "out.vqm").exists() and not (pt2 / "out.onnx").exists()


def test_pt2_legacy_layout_loads(pt2):
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        got, want = vqexport.load_model(pt2 / "legacy.pt2").module(x), tiny_cnn()(x)
    assert torch.allclose(got, want, rtol=0, atol=1e-6)  # the same weights; the graph's kernels round differently


def _entry(change):
    """A change(bytes) for the weights table: change(entry) applied to its first entry."""
    def apply(data):
        table = json.loads(data)
        change(next(iter(table["config"].values())))
        return json.dumps(table).encode()
    return apply


def _pickled(entry):
    entry["use_pickle"] = True


@pytest.mark.parametrize(("change", "says"), [
    (_pickled, "is pickled; unpickling it runs code"),
    (lambda e: e.update(path_name="../../models/model.json"), "not a tensor file"),
    (lambda e: e["tensor_meta"]["sizes"][0].update(as_int=4000), "reaches element"),
    (lambda e: e["tensor_meta"]["strides"][0].update(as_int=-9), "inconsistent sizes"),
    (lambda e: e["tensor_meta"].update(dtype=9999), "no valid dtype"),
    (lambda e: e["tensor_meta"].update(sizes=[{"as_int": 10**9}] * 4, strides=[{"as_int": 0}] * 4), "declares"),
    (lambda e: e["tensor_meta"]["storage_offset"].update(as_int="0"), "no valid dtype"),
])
def test_pt2_tensor_table_is_checked(pt2, tmp_path, capsys, change, says):
    """torch 2.9's archives describe each raw tensor in JSON: every field is checked before use."""
    rewrite(pt2 / "m.pt2", tmp_path / "bad.pt2", "data/weights/model_weights_config.json", _entry(change))
    argv = ["--quiet", "compress", str(tmp_path / "bad.pt2"), "-o", str(tmp_path / "o.vqm")]
    err = one_line_error(capsys, main(argv))
    assert says in err and "bad.pt2" in err and "model_weights_config.json" in err, err
    assert not (tmp_path / "o.vqm").exists()


def test_pt2_pickled_tensor_file_never_runs(pt2, tmp_path, capsys):
    """An entry marked pickled whose file is a real evil pickle: refused before anything reads it."""
    marker = tmp_path / "ran"
    rewrite(pt2 / "m.pt2", tmp_path / "half.pt2", "data/weights/model_weights_config.json", _entry(_pickled))
    rewrite(tmp_path / "half.pt2", tmp_path / "evil.pt2", "data/weights/weight_0", lambda _: evil_pickle(marker))
    for argv in commands(tmp_path / "evil.pt2", pt2):
        err = one_line_error(capsys, main(["--quiet", *map(str, argv)]))
        assert "--trust-pickle" in err, (argv, err)
        assert not marker.exists(), argv


def test_pt2_evil_member_in_a_fresh_process(pt2, tmp_path):
    marker = tmp_path / "ran"
    rewrite(pt2 / "m.pt2", tmp_path / "evil.pt2", "data/sample_inputs/model.pt", lambda _: evil_pickle(marker))
    p = subprocess.run([sys.executable, "-m", "vqexport.cli", "eval", str(tmp_path / "evil.pt2"), "--data",
                        str(pt2 / "d.npz")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not marker.exists()


def _touch(marker) -> str:
    return f"__import__('os').system('touch {marker}')"


def _rename_input(marker):
    """The placeholder named `input` renamed to code: torch.fx writes it into forward()'s signature."""
    evil = json.dumps(f"x=({_touch(marker)})")

    def change(data):
        text = data.decode().replace('"input"', evil)
        return text.replace('{"name": ' + evil + ', "arg"', '{"name": "input", "arg"').encode()  # schema names
    return change


def _json_change(fn):
    def change(data):
        program = json.loads(data)
        fn(program)
        return json.dumps(program).encode()
    return change


def _set_target(target):
    def fn(program):
        program["graph_module"]["graph"]["nodes"][0]["target"] = target
    return _json_change(fn)


def _set_parameter_name(marker):
    def fn(program):
        program["graph_module"]["signature"]["input_specs"][0]["parameter"]["parameter_name"] = (
            f'0"); {_touch(marker)}; ("')
    return _json_change(fn)


@pytest.mark.parametrize("case,msg", [("placeholder", "is not a plain identifier"), ("target", "calls 'builtins.exec'"),
                                      ("from_file", "calls 'torch.ops.aten.from_file.default'"),
                                      ("parameter_name", "is not a dotted name")])
def test_pt2_program_json_never_reaches_exec(pt2, tmp_path, case, msg):
    # torch.fx writes names into Python source that it exec()s; the placeholder case ran the
    # command on the old code. The others are refused by the checker before torch sees them.
    marker = tmp_path / "ran"
    change = {"placeholder": _rename_input(marker), "target": _set_target("builtins.exec"),
              "from_file": _set_target("torch.ops.aten.from_file.default"),
              "parameter_name": _set_parameter_name(marker)}[case]
    rewrite(pt2 / "m.pt2", tmp_path / "evil.pt2", "models/model.json", change)
    with pytest.raises(LoadError, match=re.escape(msg)) as e:
        vqexport.load_model(tmp_path / "evil.pt2")
    assert "\n" not in str(e.value)
    assert not marker.exists()


def test_pt2_shape_expression_never_reaches_sympify(tmp_path):
    # sympy.sympify is eval: a dynamic-shape program's expressions must not reach it unchecked.
    marker = tmp_path / "ran"
    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(tiny_mlp(), (torch.randn(2, 48),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, tmp_path / "dyn.pt2")
    good = vqexport.load_model(tmp_path / "dyn.pt2")  # the real expressions pass the grammar
    assert good.module(torch.randn(5, 48)).shape == (5, 10)

    def change(data):
        text = data.decode()
        first = re.search(r'"expr_str": ("[^"]*")', text).group(1)
        return text.replace(first, json.dumps(f"Symbol({_touch(marker)} and 's1')"), 1).encode()
    rewrite(tmp_path / "dyn.pt2", tmp_path / "evil.pt2", "models/model.json", change)
    with pytest.raises(LoadError, match="shape expression"):
        vqexport.load_model(tmp_path / "evil.pt2")
    assert not marker.exists()


def test_pt2_refusals_are_one_line(tmp_path, capsys):
    with zipfile.ZipFile(tmp_path / "old.pt2", "w") as z:
        z.writestr("serialized_exported_program.json", "{}")
    err = one_line_error(capsys, main(["compress", str(tmp_path / "old.pt2"), "-o", str(tmp_path / "o.vqm")]))
    assert "torch 2.7 or older" in err
    with zipfile.ZipFile(tmp_path / "bomb.pt2", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/archive_format", "pt2")
        z.writestr("m/archive_version", "0")
        z.writestr("m/models/model.json", " " * (64 << 20))  # 64 MiB from about 64 KiB
    err = one_line_error(capsys, main(["eval", str(tmp_path / "bomb.pt2")]))
    assert "decompression bomb" in err
    (tmp_path / "text.pt").write_text("hello, this is just text\n" * 3)
    err = one_line_error(capsys, main(["compress", str(tmp_path / "text.pt"), "-o", str(tmp_path / "o.vqm")]))
    assert "text.pt: not a model file" in err
    assert not (tmp_path / "o.vqm").exists()


class Varied(torch.nn.Module):
    """String arguments, attention, a buffer, a tensor constant, a no_grad region and a keyword input."""

    def __init__(self):
        super().__init__()
        self.c, self.l = torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 5)
        self.att = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        self.register_buffer("b", torch.zeros(8))
        self.t = torch.ones(8)

    def forward(self, x, scale=None):
        y = torch.nn.functional.interpolate(self.c(x), scale_factor=2.0, mode="bilinear")
        y = torch.nn.functional.gelu(y, approximate="tanh").mean((2, 3)) + self.b + self.t
        z = y.reshape(y.shape[0], 1, 8)
        with torch.no_grad():
            z, _ = self.att(z, z, z)
        out = self.l(torch.div(z[:, 0], 2, rounding_mode="floor"))
        return out if scale is None else out * scale


@pytest.mark.parametrize("case", ["plain", "dynamic", "keyword", "core_aten"])
def test_pt2_real_programs_pass_the_checks(tmp_path, case):
    # The checker must refuse what is dangerous, not what torch.export.save writes.
    torch.manual_seed(0)
    net, x = Varied().eval(), torch.randn(2, 3, 16, 16)
    kwargs = {"scale": torch.full((1,), 3.0)} if case == "keyword" else {}
    dynamic = ({0: torch.export.Dim("batch", min=1, max=64)},) if case == "dynamic" else None
    ep = torch.export.export(net, (x,), kwargs, dynamic_shapes=dynamic)
    torch.export.save(ep.run_decompositions() if case == "core_aten" else ep, tmp_path / "v.pt2")
    ours = vqexport.load_model(tmp_path / "v.pt2").module
    torch.testing.assert_close(ours(x, **kwargs), net(x, **kwargs))
    if case == "dynamic":  # its symbolic shapes passed the expression grammar, and work
        x = torch.randn(5, 3, 16, 16)
        torch.testing.assert_close(ours(x), net(x))


def test_pt2_trusted_loads_with_torch(pt2):
    m = vqexport.load_model(pt2 / "m.pt2", trust_pickle=True)
    x = torch.randn(3, 1, 12, 12)
    torch.testing.assert_close(m.module(x), tiny_cnn()(x))


# -- .pt2 in eval, bench, sweep and the exporters ---------------------------------------------------

@pytest.mark.slow  # eval, bench and a sweep of one .pt2 (11 s)
def test_pt2_eval_bench_sweep(pt2, tmp_path, capsys):
    data = np.load(pt2 / "d.npz")
    expect = tiny_cnn()(torch.from_numpy(data["x"])).argmax(1).numpy()
    top1 = float(np.mean(expect == data["y"]))
    assert main(["eval", str(pt2 / "m.pt2"), "--data", str(pt2 / "d.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(top1)
    assert main(["bench", str(pt2 / "m.pt2"), "--runs", "3", "--warmup", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == 3
    assert main(["--quiet", "sweep", str(pt2 / "m.pt2"), "--data", str(pt2 / "d.npz"), "-o", str(tmp_path / "s"),
                 "--quick", "--json"]) == 0
    sweep = json.loads(capsys.readouterr().out)
    assert sweep["baseline"]["top1"] == pytest.approx(top1)


class BakedBatch(torch.nn.Module):
    """view(1, -1) bakes the batch size of 1 into the exported graph."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(144, 10)

    def forward(self, x):
        return self.fc(x.view(1, -1))


def test_pt2_fixed_batch_runs_any_batch(tmp_path):
    torch.manual_seed(0)
    net = BakedBatch().eval()
    torch.export.save(torch.export.export(net, (torch.randn(1, 1, 12, 12),)), tmp_path / "b.pt2")
    m = vqexport.load_model(tmp_path / "b.pt2")
    x = torch.randn(7, 1, 12, 12)
    expect = torch.cat([net(x[i:i + 1]) for i in range(7)])
    torch.testing.assert_close(m.module.eval()(x), expect)
    cm = vqexport.compress(m, "kmeans", k=4, min_size=0)
    rebuilt = to_torch(cm, m)  # a deepcopy of the module, which keeps the slicing
    decoded = torch.cat([rebuilt(x[i:i + 1]) for i in range(7)])
    torch.testing.assert_close(rebuilt(x), decoded)
    with pytest.raises(VqexportError, match=r"takes inputs of shape \(1, 1, 12, 12\)"):
        m.module(torch.randn(2, 1, 6, 24))


def test_pt2_input_shape_from_example_inputs(pt2, tmp_path, capsys):
    import onnx

    assert vqexport.load_model(pt2 / "m.pt2").input == {"shape": [1, 1, 12, 12], "layout": "NCHW"}
    assert main(["--quiet", "to-onnx", str(pt2 / "m.pt2"), "-o", str(tmp_path / "m.onnx")]) == 0
    dims = onnx.load(tmp_path / "m.onnx").graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims][1:] == [1, 12, 12]


def test_export_asks_for_the_input_shape_before_compressing(tmp_path, capsys, monkeypatch):
    import vqexport.compressor

    def must_not_run(*a, **k):
        raise AssertionError("compressed before checking the input shape")

    monkeypatch.setattr(vqexport.compressor, "compress_model", must_not_run)
    torch.jit.save(torch.jit.script(tiny_mlp()), tmp_path / "mlp.pt")
    for cmd, out in (("to-onnx", "m.onnx"), ("to-tflite", "m.tflite")):
        err = one_line_error(capsys, main([cmd, str(tmp_path / "mlp.pt"), "-o", str(tmp_path / out)]))
        assert "--input-shape" in err
        assert not (tmp_path / out).exists()


# -- architectures: only the user's --arch, or the allow-list -----------------------------------------

def _vqm_naming(path, arch, source):
    cm = vqexport.compress(vqexport.load_model(source), "kmeans", k=4, min_size=0)
    cm.metadata["source"]["arch"] = arch
    write_vqm(cm, path)


def test_vqm_metadata_arch_imports_and_calls_nothing(torchscript_cnn, tmp_path):
    """os:abort would kill the process, tempfile:mkdtemp make a folder, this:x print the Zen of Python."""
    from vqexport.zoo.reference import save_torchscript

    files = []
    for i, arch in enumerate(["os:abort", "tempfile:mkdtemp", "this:x"]):
        _vqm_naming(tmp_path / f"m{i}.vqm", arch, torchscript_cnn)
        files.append(str(tmp_path / f"m{i}.vqm"))
    # A TorchScript's own vqexport.json naming an architecture: recorded, never imported.
    save_torchscript(tiny_cnn(), tmp_path / "ts.pt", {"arch": "this:x", "input": {"shape": [1, 1, 12, 12]}})
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((20, 1, 12, 12)).astype(np.float32), y=rng.integers(0, 10, 20))
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    script = f"""
import contextlib, io, json, sys
from vqexport.cli import main
files, data, ts = {files!r}, {str(tmp_path / 'd.npz')!r}, {str(tmp_path / 'ts.pt')!r}
codes = []
for f in files:
    codes.append(main(["eval", f, "--data", data]))
    codes.append(main(["to-onnx", f, "-o", f + ".onnx"]))
codes.append(main(["--quiet", "compress", ts, "-o", ts + ".vqm"]))
codes.append(main(["eval", ts + ".vqm", "--data", data]))
print(json.dumps({{"codes": codes, "this": "this" in sys.modules}}))
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "TMPDIR": str(tmp)})
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result == {"codes": [2, 2, 2, 2, 2, 2, 0, 2], "this": False}, p.stderr
    assert "Zen of Python" not in p.stdout and list(tmp.iterdir()) == []
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("vqexport: error:")]
    assert len(errors) == 7 and all("does not import on a file's word" in ln for ln in errors), p.stderr
    assert "Traceback" not in p.stderr


def test_vqm_rebuilt_with_the_users_arch(tmp_path, monkeypatch, capsys):
    (tmp_path / "usernet.py").write_text(
        "import torch\n\nclass Net(torch.nn.Sequential):\n    def __init__(self):\n"
        "        super().__init__(torch.nn.Flatten(), torch.nn.Linear(144, 32), torch.nn.ReLU(),\n"
        "                         torch.nn.Linear(32, 10))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import usernet

    torch.save(usernet.Net().state_dict(), tmp_path / "sd.pt")
    cm = vqexport.compress(vqexport.load_model(tmp_path / "sd.pt", arch="usernet:Net"), "kmeans", k=4, min_size=0)
    cm.metadata["input"] = {"shape": [1, 1, 12, 12], "layout": "NCHW"}
    write_vqm(cm, tmp_path / "m.vqm")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((20, 1, 12, 12)).astype(np.float32), y=rng.integers(0, 10, 20))
    # The file names usernet:Net, which is not on the allow-list: refused on its word ...
    err = one_line_error(capsys, main(["eval", str(tmp_path / "m.vqm"), "--data", str(tmp_path / "d.npz")]))
    assert "'usernet:Net'" in err and "--arch" in err
    # ... and used when the user names it.
    assert main(["eval", str(tmp_path / "m.vqm"), "--data", str(tmp_path / "d.npz"), "--arch", "usernet:Net"]) == 0


@pytest.mark.parametrize("arch,msg", [("os:system", "not a class that subclasses torch.nn.Module"),
                                      ("builtins:exec", "not a class that subclasses torch.nn.Module"),
                                      ("os.path:join", "not a class"), ("a b:c", "expected torchvision:NAME"),
                                      ("torchvision:../x", "torchvision has no model")])
def test_arch_must_be_a_module_class(tmp_path, capsys, arch, msg, torchscript_cnn):
    torch.save(tiny_mlp().state_dict(), tmp_path / "sd.pt")
    for model in (tmp_path / "sd.pt", torchscript_cnn):
        err = one_line_error(capsys, main(["compress", str(model), "--arch", arch, "-o", str(tmp_path / "o.vqm")]))
        assert msg in err
    assert not (tmp_path / "o.vqm").exists()


# -- tied weights ---------------------------------------------------------------------------------------

class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = torch.nn.Linear(32, 32), torch.nn.Linear(32, 32), torch.nn.Linear(32, 10)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x.flatten(1))))))


@pytest.mark.tflite  # one of the formats is .tflite
def test_tied_weights_one_tensor_in_every_format(tmp_path):
    import onnx

    from vqexport.evaluate.runtimes import TorchRuntime, open_runtime
    from vqexport.formats.tflite import flatbuffer as tflite_rewrite

    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(Tied().eval()), tmp_path / "tied.pt")
    model = vqexport.load_model(tmp_path / "tied.pt")
    model.input = {"shape": [1, 1, 4, 8], "layout": "NCHW"}
    cm = vqexport.compress(model, "kmeans", k=4, seed=0, min_size=0)
    assert [t.name for t in cm.compressed] == ["a.weight", "c.weight"] and cm.tied == {"b.weight": "a.weight"}
    write_vqm(cm, tmp_path / "tied.vqm")
    back = vqexport.read_vqm(tmp_path / "tied.vqm")
    assert "b.weight" not in [t.name for t in back.tensors] and back.tied == {"b.weight": "a.weight"}
    net = to_torch(back, model)
    assert torch.equal(net.a.weight, net.b.weight)

    x = np.random.default_rng(0).standard_normal((64, 1, 4, 8)).astype(np.float32)
    with torch.inference_mode():  # as the runtimes run it (TorchScript shares one executor between copies)
        ref = net(torch.from_numpy(x)).numpy()
    labels = ref.argmax(1)
    paths = [tmp_path / "tied.vqm", tmp_path / "tied.onnx"]
    vqexport.to_onnx(cm, paths[1], model=model)
    inits = onnx.load(paths[1]).graph.initializer
    assert not [i.name for i in inits if i.data_type == 1 and len(i.dims) == 2 and 32 in i.dims]  # no dense copy
    for mode in ("once", "every-run", "load"):
        path = tmp_path / f"tied-{mode}.tflite"
        vqexport.to_tflite(cm, path, model=model, decode=mode)
        buffers = tflite_rewrite.read_model(path.read_bytes()).buffers
        assert max(len(b.data) for b in buffers if b.data is not None) < 32 * 32 * 4, mode  # no dense copy
        paths.append(path)
    for path in paths:
        if path.suffix == ".vqm":
            rt = TorchRuntime(to_torch(vqexport.read_vqm(path), model), model.input)
        else:
            rt = open_runtime(path)
        out = rt.run(x)
        np.testing.assert_allclose(out, ref, atol=1e-4, err_msg=str(path))
        assert np.array_equal(out.argmax(1), labels), path


def test_tied_weights_settings():
    from vqexport.errors import ConfigError

    torch.manual_seed(0)
    net = Tied().eval()
    only_b = vqexport.compress(net, "kmeans", k=4, layers=("b",), min_size=0)
    assert [t.name for t in only_b.compressed] == ["a.weight"] and only_b.tied == {"b.weight": "a.weight"}
    x = torch.randn(3, 32)
    rebuilt = to_torch(only_b, net)
    assert rebuilt.a.weight is rebuilt.b.weight and not torch.equal(rebuilt.a.weight, net.a.weight)
    with pytest.raises(ConfigError, match="a.weight and b.weight are one tensor"):
        vqexport.compress(net, "kmeans", k=4, overrides={"b": {"k": 8}}, min_size=0)
    assert rebuilt(x).shape == (3, 10)

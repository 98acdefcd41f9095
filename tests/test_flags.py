"""Flags: a wrong or unused flag is one line and exit 2, defaults are the documented ones and
--help says them, --quiet works in both places, and stderr stays a readable log off a terminal."""
import json
import subprocess
import sys

import pytest

from conftest import cli, run_cli


@pytest.fixture(scope="module")
def d(tmp_path_factory, torchscript_cnn):
    """The tiny CNN with its input spec (cnn.pt), without one (bare.pt), and compressed (good.vqm)."""
    import torch

    from conftest import tiny_cnn

    d = tmp_path_factory.mktemp("flags")
    torch.jit.save(torch.jit.script(tiny_cnn()), str(d / "bare.pt"))
    code, _, err = run_cli("compress", torchscript_cnn, "-o", d / "good.vqm", "--quiet")
    assert code == 0, err
    return d


def refused(argv, expect, tmp_path, inputs=()):
    before = {p: p.read_bytes() for p in inputs}
    code, stdout, stderr = cli(*argv)  # in this process: the same main(), without a new interpreter
    assert code == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqexport: error: "), stderr
    for text in expect:
        assert text in lines[0], lines[0]
    assert not list(tmp_path.iterdir()), "an output was created"
    assert {p: p.read_bytes() for p in inputs} == before
    return lines[0]


# -- item 11: --input-shape ------------------------------------------------------------------------
@pytest.mark.parametrize("shape,expect", [
    ("0,0", "every dimension must be at least 1"),
    ("1,3,-1,5", "every dimension must be at least 1"),
    ("1,x", "expected whole numbers"),
    ("64", "expected 2 to 5 numbers"),
    ("1,1,65536,65536", "more than the"),
    ("1,63", "--input-shape 1,63 does not fit the model"),
    ("1,1,28,28", "--input-shape 1,1,28,28 does not fit the model"),
    ("1,3,12,12", "does not fit the model"),
])
@pytest.mark.parametrize("command", ["to-onnx", "compress"])
def test_wrong_input_shape(d, tmp_path, command, shape, expect):
    line = refused([command, d / "bare.pt", "--input-shape", shape, "-o", tmp_path / "m.out"], [expect], tmp_path)
    assert "--input-shape" in line


def test_input_shape_that_fits_is_used(d, tmp_path):
    import onnx

    code, _, stderr = run_cli("to-onnx", d / "bare.pt", "--input-shape", "1,1,12,12", "-o", tmp_path / "m.onnx",
                              "--quiet")
    assert code == 0, stderr
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["input"])["shape"] == [1, 1, 12, 12]


# -- item 12: nothing the user gives is silently ignored -------------------------------------------
@pytest.mark.parametrize("flags,expect", [
    (["--override", "nosuch*:k=8"], "--override nosuch*:k=8: 'nosuch*' matches no selected layer"),
    (["--layers", "4", "--override", "6:k=8"], "'6' matches no selected layer"),
    (["--type-override", "embedding:k=8"], "--type-override embedding:k=8: no selected layer is of type embedding"),
    (["--method", "pq", "--rows", "--group-size", "8"], "--group-size applies to pq by columns"),
    (["--method", "svd", "--k", "8"], "--k has no effect with --method svd"),
    (["--method", "binary", "--d", "4"], "--d has no effect with --method binary"),
    (["--method", "binary", "--seed", "3"], "--seed has no effect with --method binary"),
    (["--rows"], "--rows has no effect with --method kmeans"),
    (["--method", "pq", "--rank", "4"], "--rank has no effect with --method pq"),
    (["--method", "svd", "--codebook-dtype", "float16"], "--codebook-dtype has no effect with --method svd"),
    (["--method", "rq", "--d", "2"], "--d has no effect with --method rq"),
    (["--override", "4:rank=8"], "--override 4:rank=8: rank has no effect with method kmeans"),
    (["--override", "4:method=svd,k=8"], "k has no effect with method svd"),
    (["--override", "*:method=svd", "--k", "8"], "--k has no effect: the layers it could apply to use svd"),
    (["--k", "8", "--override", "*:k=4"], "--k has no effect: every layer that reads it has its own k"),
])
def test_unused_method_flags_are_errors(d, tmp_path, torchscript_cnn, flags, expect):
    refused(["compress", torchscript_cnn, *flags, "-o", tmp_path / "m.vqm"], [expect], tmp_path)


def test_defaults_are_the_documented_ones_and_overrides_count(d, tmp_path, torchscript_cnn):
    from vqexport import read_vqm

    code, _, stderr = run_cli("compress", torchscript_cnn, "-o", tmp_path / "a.vqm", "--quiet")
    assert code == 0, stderr
    config = read_vqm(tmp_path / "a.vqm").metadata["config"]
    assert config == {"method": "kmeans", "k": 16, "d": 4, "rows": False, "stages": 2, "rank": 32,
                      "codebook_dtype": "float32", "group_size": 0, "seed": 0, "layers": ["*"], "overrides": {},
                      "types": ["conv", "linear", "embedding", "attention"], "min_size": 2048, "fold_batchnorm": True}
    # --k is read by the layer an override turns to k-means, so it is not an error here.
    code, _, stderr = run_cli("compress", torchscript_cnn, "--method", "svd", "--rank", "8",
                              "--override", "6:method=kmeans", "--k", "4", "--min-size", "0", "--types", "linear",
                              "-o", tmp_path / "b.vqm", "--quiet")
    assert code == 0, stderr
    layers = read_vqm(tmp_path / "b.vqm").metadata["layers"]
    assert layers["4.weight"]["method"] == "svd" and layers["4.weight"]["rank"] == 8
    assert layers["6.weight"]["method"] == "kmeans" and layers["6.weight"]["k"] == 4


@pytest.mark.parametrize("command", ["to-onnx", "to-tflite"])
@pytest.mark.parametrize("flags", [["--k", "8"], ["--method", "pq"], ["--rows"], ["--seed", "1"],
                                   ["--layers", "4"], ["--override", "4:k=8"]])
def test_method_flags_on_a_vqm_input_are_errors(d, tmp_path, command, flags):
    out = tmp_path / "m.out"
    refused([command, d / "good.vqm", *flags, "-o", out], [f"{flags[0]} has no effect with a .vqm input",
                                                             "good.vqm is already compressed"],
            tmp_path, inputs=[d / "good.vqm"])


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bench_threads_must_be_positive(d, tmp_path, value):
    line = refused(["bench", d / "good.vqm", "--threads", value], ["argument --threads"], tmp_path)
    assert "good.vqm" not in line, "a flag mistake is not the file's"


@pytest.mark.parametrize("flag,value", [("--runs", "0"), ("--warmup", "-1")])
def test_bench_runs_and_warmup_are_checked_as_flags(d, tmp_path, flag, value):
    refused(["bench", d / "good.vqm", flag, value], [f"argument {flag}: must be at least"], tmp_path)


@pytest.mark.parametrize("where", ["global", "command"])
def test_quiet_before_or_after_the_command(torchscript_cnn, tmp_path, where):
    argv = ["compress", torchscript_cnn, "--method", "pq", "--k", "16", "-o", tmp_path / "m.vqm"]
    argv = ["--quiet", *argv] if where == "global" else [*argv, "--quiet"]
    code, stdout, stderr = run_cli(*argv)
    assert code == 0 and "4.weight" in stdout
    assert stderr == "", "--quiet left progress or notes on stderr"


# -- item 15: progress off a terminal ----------------------------------------------------------------
def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(torchscript_cnn, tmp_path):
    code, _, stderr = run_cli("to-onnx", torchscript_cnn, "--types", "linear", "--min-size", "0",
                              "-o", tmp_path / "m.onnx")
    assert code == 0, stderr
    assert "\r" not in stderr and "\x1b" not in stderr
    lines = stderr.splitlines()
    for step in ("compress", "decode", "decode graph"):
        done = [x for x in lines if x.startswith(f"vqexport: {step}: ")]
        assert [x.split(" (")[0] for x in done] == [f"vqexport: {step}: 4.weight", f"vqexport: {step}: 6.weight"]
        assert done[-1].split("done [")[1].startswith("2/2")


def test_progress_bar_on_a_terminal(monkeypatch, capsys):
    from vqexport.util import progress

    monkeypatch.setattr(progress, "_terminal", lambda: True)
    bar = progress.layer_bar([("a", 10), ("b", 30)], quiet=False, step="compress")
    assert bar.bar is not None and not bar.plain
    bar.done("a")
    bar.done("b")
    bar.close()
    monkeypatch.setattr(progress, "_terminal", lambda: False)
    steps = progress.step_bar(3, "sweep", quiet=False)
    for label in ("x", "y", "z"):
        steps.set_description_str(f"sweep: {label}")
        steps.update(1)
    assert capsys.readouterr().err.endswith("vqexport: sweep: x done [1/3]\nvqexport: sweep: y done [2/3]\n"
                                            "vqexport: sweep: z done [3/3]\n")


# -- item 11: a closed pipe --------------------------------------------------------------------------
def test_closed_stdout_is_a_quiet_exit(d):
    p = subprocess.Popen([sys.executable, "-m", "vqexport.cli", "inspect", str(d / "good.vqm"), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # before the child writes: `vqexport inspect --json | head -0`
    stderr = p.stderr.read().decode()
    assert p.wait(timeout=300) == 141
    assert stderr == ""


# -- item 16: --help says the defaults --------------------------------------------------------------
@pytest.mark.parametrize("command,expect", [
    ("compress", ["--method {binary,kmeans,pq,rq,svd,vq}", "(default: kmeans)", "(default: 16)", "(default: 4)",
                  "(default: 2)", "(default: 32)", "(default: float32)", "(default: 0)", "(default: 2048)",
                  "(default: one codebook per tensor)"]),
    ("to-tflite", ["(default: kmeans)", "(default: 16)", "once: decode on the first invoke"]),
    ("eval", ["(default: mnist5k)"]),
    ("bench", ["--runs RUNS", "(default: 100)", "(default: 10)"]),
    ("sweep", ["(default: mnist5k)", "(default: vqm)"]),
])
def test_help_shows_defaults(command, expect):
    code, stdout, _ = run_cli(command, "--help")
    assert code == 0
    text = " ".join(stdout.split())  # argparse wraps lines
    for e in expect:
        assert e in text, (e, stdout)
    assert "example:" in stdout and "(default: None)" not in text and "(default: False)" not in text


def test_readme_says_how_to_start():
    from pathlib import Path

    text = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    head = text[:text.index("## The first two commands")]
    assert ". .venv/bin/activate" in head and ".venv/bin/vqexport" in head
    assert "6 minutes" in head and "make demo" in head

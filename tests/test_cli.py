"""The command line, run as a user runs it: exit codes, one-line errors, no partial output."""
import json

import pytest
import torch

from conftest import cli, run_cli, tiny_mlp


def test_compress_then_inspect_json(torchscript_cnn, tmp_path):
    out = tmp_path / "m.vqm"
    code, stdout, stderr = run_cli("compress", torchscript_cnn, "--method", "pq", "--d", "4", "--k", "16",
                                   "--types", "linear", "--min-size", "0", "-o", out, "--quiet")
    assert code == 0, stderr
    assert "4.weight" in stdout and "compression" in stdout
    code, stdout, _ = run_cli("inspect", out, "--json")
    assert code == 0
    info = json.loads(stdout)
    assert info["bytes"] == out.stat().st_size
    assert [x["name"] for x in info["layers"]] == ["4.weight"]
    assert info["skipped"] == {"6.weight": "k=16 is larger than the 10 vectors in each segment"}
    assert info["layers"][0]["params"] == {"k": 16, "d": 4, "rows": False}


def test_skipped_layer_is_announced(torchscript_cnn, tmp_path):
    code, _, stderr = run_cli("compress", torchscript_cnn, "--method", "pq", "--k", "16", "--min-size", "0",
                              "-o", tmp_path / "m.vqm")
    assert code == 0
    assert "6.weight (10, 64) left uncompressed" in stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_export_shows_progress_per_layer(torchscript_cnn, tmp_path, quiet):
    code, _, stderr = run_cli("to-onnx", torchscript_cnn, "--method", "kmeans", "--k", "16",
                              "-o", tmp_path / "m.onnx", *(["--quiet"] if quiet else []))
    assert code == 0, stderr
    steps = ["compress: 4.weight (", "decode: 4.weight (", "decode graph: 4.weight (",
             "vqexport: exporting the network to ONNX (torch.onnx): done in"]
    if quiet:
        assert not any(s in stderr for s in steps), stderr
    else:
        for s in steps:
            assert s in stderr, (s, stderr)


@pytest.mark.tflite
def test_to_tflite_quiet_prints_only_the_result(torchscript_cnn, tmp_path):
    # The converter's C++ logging writes to fd 2 on import and while converting; users see none of it.
    code, stdout, stderr = run_cli("to-tflite", torchscript_cnn, "--method", "kmeans", "--k", "16",
                                   "-o", tmp_path / "m.tflite", "--quiet", "--json")
    assert code == 0, stderr
    assert stderr == ""
    info = json.loads(stdout)
    assert info["bytes"] == (tmp_path / "m.tflite").stat().st_size and info["export"]["within_bound"]


@pytest.mark.tflite
def test_to_tflite_decode_load_then_bench(torchscript_cnn, tmp_path):
    """The user's path for --decode load: the command says how to run it, and bench runs it."""
    out = tmp_path / "m.tflite"
    code, stdout, stderr = run_cli("to-tflite", torchscript_cnn, "--method", "kmeans", "--k", "16",
                                   "--decode", "load", "-o", out, "--quiet")
    assert code == 0, stderr
    assert "a plain TFLite interpreter refuses it" in stdout
    code, stdout, stderr = run_cli("bench", out, "--runs", "3", "--warmup", "1", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["runs"] == 3


def test_help_shows_an_example():
    code, stdout, _ = run_cli("to-tflite", "--help")
    assert code == 0 and "vqexport to-tflite model.pt --method kmeans --k 16" in stdout


@pytest.fixture(scope="module")
def files(tmp_path_factory, torchscript_cnn):
    d = tmp_path_factory.mktemp("bad")
    (d / "junk.pt").write_bytes(b"\x00junk")
    torch.save(tiny_mlp(), d / "pickled.pt")
    (d / "bad.vqm").write_bytes(b"VQM\x00" + b"\x00" * 10)
    good = d / "good.vqm"
    code, _, err = run_cli("compress", torchscript_cnn, "-o", good, "--quiet")
    assert code == 0, err
    (d / "truncated.vqm").write_bytes(good.read_bytes()[:-100])
    conv = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()))
    torch.jit.save(conv, str(d / "convonly.pt"))
    (d / "junk.tflite").write_bytes(b"\xff\xff\x00\x00" + bytes(12))
    return d


BAD = [
    (["compress", "{d}/missing.pt"], "missing.pt: no such file"),
    (["compress", "{d}/junk.pt"], "junk.pt: not a model file"),
    (["compress", "{d}/pickled.pt"], "--trust-pickle"),
    (["compress", "{model}", "--layers", "classifier.*"], "matches no layer"),
    (["compress", "{model}", "--k", "1"], "k must be between 2 and 65536"),
    (["compress", "{model}", "--k", "1000", "--layers", "6", "--min-size", "0"],
     "k=1000 is larger than the 640 weights"),
    (["compress", "{model}", "--method", "pq", "--k", "16", "--layers", "6", "--min-size", "0"],
     "larger than the 10 vectors"),
    (["compress", "{model}", "--method", "pq", "--d", "5", "--types", "linear", "--min-size", "0"],
     "the setting fits no layer"),
    (["compress", "{model}", "--group-size", "3", "--layers", "4"], "--group-size 3 does not divide the 64 output"),
    (["compress", "{model}", "--types", "conv,lstm"], "unknown type 'lstm'"),
    (["compress", "{model}", "--method", "svd", "--group-size", "4"], "--group-size has no effect with --method svd"),
    (["compress", "{model}", "--override", "4=k"], "--override"),
]


@pytest.mark.parametrize("argv,expect", BAD)
def test_bad_input_one_line_exit_2_no_output(files, torchscript_cnn, tmp_path, argv, expect):
    out = tmp_path / "out.vqm"
    argv = [a.format(d=files, model=torchscript_cnn) for a in argv] + ["-o", out]
    code, stdout, stderr = cli(*argv)
    assert code == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqexport: error: "), stderr
    assert expect in lines[0]
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not list(tmp_path.iterdir()), "a temporary file was left behind"


@pytest.mark.tflite  # the .tflite reader is LiteRT's
@pytest.mark.parametrize("command", [["bench", "--runs", "2"], ["eval"]])
def test_damaged_tflite_is_one_line(files, command):
    """bench runs the model in a child process; its one-line error comes back as it was, not wrapped."""
    code, stdout, stderr = run_cli(command[0], files / "junk.tflite", *command[1:])
    assert code == 2, (stdout, stderr)
    assert stderr.strip() == f"vqexport: error: {files / 'junk.tflite'}: not a readable .tflite " \
                             "(an offset points outside the file)"


@pytest.mark.parametrize("name,expect", [("bad.vqm", "bad.vqm:"), ("truncated.vqm", "truncated"),
                                         ("missing.vqm", "no such file"), ("junk.pt", "bad magic")])
def test_inspect_rejects_bad_files(files, name, expect):
    code, _, stderr = run_cli("inspect", files / name)
    assert code == 2 and expect in stderr and len(stderr.strip().splitlines()) == 1


def test_model_without_dense_layers_is_said_plainly(files, tmp_path):
    out = tmp_path / "c.vqm"
    code, stdout, stderr = run_cli("compress", files / "convonly.pt", "-o", out)
    assert code == 0, stderr
    assert "every weight of the chosen types is below --min-size 2048; nothing was compressed" in stdout
    code, stdout, stderr = run_cli("compress", files / "convonly.pt", "--types", "linear", "-o", tmp_path / "l.vqm")
    assert code == 0, stderr
    assert "it has no weight of the chosen types; nothing was compressed" in stdout
    assert out.exists()


def test_trust_pickle_flag_loads(files, tmp_path):
    code, _, stderr = run_cli("compress", files / "pickled.pt", "--trust-pickle", "-o", tmp_path / "p.vqm", "--quiet")
    assert code == 0, stderr

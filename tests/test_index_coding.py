"""--index-coding on the command line, `inspect`'s bits per weight before and after coding, and the
decode="load" .tflite that carries the entropy-coded .vqm (its weights as a packed one gives)."""
import json

import numpy as np
import pytest
import torch

import vqexport
from vqexport.formats.huffman import entropy_bits
from vqexport.formats.vqm import HEADER

from conftest import TINY_CNN_INPUT, cli


def gaussian_cnn() -> torch.nn.Module:
    """The tiny CNN's shape with a 64 x 144 first dense layer of Gaussian weights, whose 16-entry
    k-means indices code smaller (torch's uniform init makes clusters of equal size)."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 10)).eval()
    with torch.no_grad():
        net[4].weight.normal_(0, 0.1)
    return net


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory):
    from vqexport.zoo.reference import save_torchscript

    path = tmp_path_factory.mktemp("coding") / "cnn.pt"
    save_torchscript(gaussian_cnn(), path, {"input": TINY_CNN_INPUT, "labels": [str(i) for i in range(10)]})
    return path


def version(path) -> tuple[int, int]:
    return HEADER.unpack_from(path.read_bytes())[1:3]


def test_compress_codes_by_default_and_packed_keeps_the_older_version(model_pt, tmp_path):
    for coding, want in ((None, (3, 0)), ("auto", (3, 0)), ("packed", (1, 0))):
        out = tmp_path / f"{coding}.vqm"
        code, _, err = cli("compress", model_pt, "-o", out, "--quiet", *(["--index-coding", coding] if coding else []))
        assert code == 0, err
        assert version(out) == want, coding
    assert (tmp_path / "auto.vqm").stat().st_size < (tmp_path / "packed.vqm").stat().st_size
    assert (tmp_path / "None.vqm").read_bytes() == (tmp_path / "auto.vqm").read_bytes()


def test_inspect_shows_bits_per_weight_packed_stored_and_at_entropy(model_pt, tmp_path):
    out = tmp_path / "m.vqm"
    assert cli("compress", model_pt, "-o", out, "--quiet")[0] == 0
    code, stdout, err = cli("inspect", out, "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(stdout)["layers"]}
    fc = rows["4.weight"]
    t = vqexport.read_vqm(out)["4.weight"]
    h = entropy_bits(t.indices(), 16)
    assert fc["index_coding"] == "huffman" and fc["index_bits"] == 4
    assert fc["index_entropy_bits"] == pytest.approx(h)
    assert h <= fc["index_coded_bits"] < 4  # Huffman with its table: above the entropy, below the packed width
    assert fc["entropy_bits_per_weight"] < fc["coded_bits_per_weight"] < fc["bits_per_weight"]
    assert fc["coded_bits_per_weight"] == pytest.approx(
        (t.ideal_bits - t.sections["indices"].ideal_bits + 8 * t.sections["indices"].coded_nbytes) / t.numel)
    text = cli("inspect", out)[1]
    assert "as stored" in text and "at entropy" in text and f"{fc['coded_bits_per_weight']:.3f}" in text


@pytest.mark.parametrize("argv,expect", [
    (["to-onnx", "{vqm}", "--index-coding", "packed"], "--index-coding has no effect with a .vqm input"),
    (["to-tflite", "{vqm}", "--index-coding", "auto"], "--index-coding has no effect with a .vqm input"),
    (["to-tflite", "{vqm}", "--decode", "every-run", "--index-coding", "packed"], "no .vqm is written"),
    (["compress", "{pt}", "-o", "{out}", "--index-coding", "huffman"], "invalid choice: 'huffman'"),
])
def test_an_index_coding_that_does_not_apply_is_an_error(model_pt, tmp_path, argv, expect):
    src = tmp_path / "src"
    src.mkdir()
    vqm = src / "m.vqm"
    vqexport.write_vqm(vqexport.compress(gaussian_cnn(), "kmeans", k=16), vqm)
    before = vqm.read_bytes()
    code, _, err = cli(*[a.format(vqm=vqm, pt=model_pt, out=tmp_path / "o.vqm") for a in argv], "-o",
                       tmp_path / "out.x") if "-o" not in argv else cli(
        *[a.format(vqm=vqm, pt=model_pt, out=tmp_path / "o.vqm") for a in argv])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and expect in lines[0], err
    assert vqm.read_bytes() == before and not (tmp_path / "out.x").exists() and not (tmp_path / "o.vqm").exists()


@pytest.mark.tflite
def test_the_export_api_refuses_index_coding_where_the_graph_decodes(tmp_path):
    pytest.importorskip("litert_torch")
    cm = vqexport.compress(gaussian_cnn(), "kmeans", k=16)
    with pytest.raises(vqexport.errors.ConfigError, match="--index-coding has no effect with --decode once"):
        vqexport.to_tflite(cm, tmp_path / "m.tflite", model=gaussian_cnn(), decode="once", index_coding="auto",
                           input_shape=(1, 1, 12, 12))


@pytest.mark.tflite
def test_a_load_file_carries_the_coded_vqm_and_fills_the_same_weights(tmp_path):
    pytest.importorskip("litert_torch")
    from vqexport.formats.tflite import external, flatbuffer

    net = gaussian_cnn()
    cm = vqexport.compress(net, "kmeans", k=16, seed=0)
    cm.metadata["input"] = dict(TINY_CNN_INPUT)
    files = {}
    for coding in ("auto", "packed"):
        path = tmp_path / f"{coding}.tflite"
        vqexport.to_tflite(cm, path, model=net, decode="load", index_coding=coding)
        files[coding] = path.read_bytes()
    embedded = {c: flatbuffer.read_metadata(d, external.EMBED_NAME) for c, d in files.items()}
    assert HEADER.unpack_from(embedded["auto"])[1] == 3 and HEADER.unpack_from(embedded["packed"])[1] == 1
    assert len(files["auto"]) < len(files["packed"])  # the coded .vqm is the smaller download
    auto, packed = external.expand(files["auto"]), external.expand(files["packed"])
    # The decode areas (what the loader adds after the file, from its first 64-byte boundary) are
    # byte for byte the same.
    areas = [x[-(-len(files[c]) // 64) * 64:] for c, x in (("auto", auto), ("packed", packed))]
    assert areas[0] == areas[1] and np.any(np.frombuffer(areas[0], dtype="<f4"))

"""tools/bench_compress.py end to end on its tiny model, plus its shared error function."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "bench_compress.py"


def _tool():
    return load_tool("bench_compress.py")


@pytest.mark.slow  # a child process per config (11 s)
def test_tiny_run_reports_every_config(tmp_path):
    p = subprocess.run([sys.executable, str(TOOL), "--tiny", "--anchors", "none", "--json", "--workdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout)
    tool = _tool()
    runs = {r["config"]: r for r in report["runs"]}
    assert set(runs) == set(tool.CONFIGS)
    for name, r in runs.items():
        assert "error" not in r, (name, r)
        assert r["seconds"] > 0 and r["peak_rss_bytes"] > 0 and r["process_peak_rss_bytes"] > 0, name
        assert r["mse"] > 0 and r["global_rel_error"] > 0 and r["sum_rel_error"] > 0, name
        assert len(r["layers"]) == 3, name
        for layer in r["layers"].values():  # our float64 error agrees with compress()'s own
            assert abs(layer["rel_error"] - layer["rel_error_metadata"]) < 1e-5
    assert runs["kmeans-k256"]["mse"] < runs["kmeans-k16"]["mse"]
    assert runs["kmeans-k256"]["sum_rel_error"] < runs["kmeans-k16"]["sum_rel_error"]
    assert runs["kmeans-k16"]["mse"] < runs["binary"]["mse"]  # 4 bits beat 1 bit
    assert report["models"]["tiny"]["float32_bytes"] == 4 * report["models"]["tiny"]["params"]
    # The table renders from the same report.
    text = tool.render(report)
    for name in tool.CONFIGS:
        assert f"| tiny | {name} |" in text


def test_mse_from_matches_direct_reconstruction(rng):
    tool = _tool()
    w = rng.standard_normal((6, 8)).astype(np.float32)
    cent = np.array([-1.0, 0.0, 1.0])
    labels = rng.integers(0, 3, w.size)
    assert np.isclose(tool.mse_from(w, cent, labels, None), np.mean((w.ravel().astype(np.float64) - cent[labels]) ** 2))
    # pq by columns, d=2: segment j holds columns 2j, 2j+1; labels [s, m]
    cb = rng.standard_normal((4, 3, 2))
    lab = rng.integers(0, 3, (4, 6))
    rec = np.concatenate([cb[j][lab[j]] for j in range(4)], axis=1)
    assert np.isclose(tool.mse_from(w, cb, lab, 2), np.mean((w.astype(np.float64) - rec) ** 2))


def test_sklearn_anchor_on_a_small_layer(tmp_path):
    """One anchor, the way the tool runs it: a subprocess on an .npy, MSE computed here."""
    tool = _tool()
    w = (np.random.default_rng(0).standard_normal((64, 64)) * 0.01).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    ours = tool.run_anchor("vqexport-kmeans", str(tmp_path / "w.npy"), "kmeans-k16", 0, 120, tmp_path)
    theirs = tool.run_anchor("sklearn-kmeans", str(tmp_path / "w.npy"), "kmeans-k16", 0, 120, tmp_path)
    assert "error" not in ours and "error" not in theirs, (ours, theirs)
    assert ours["seconds"] > 0 and theirs["seconds"] > 0
    # Both near the optimum on 4096 values: within 5% of each other.
    assert 0.95 < theirs["mse"] / ours["mse"] < 1.05

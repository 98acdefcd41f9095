"""tools/android_bench.py against a fake `adb` that records its calls and plays the app: one model
per process, crashes and bad results as rows, merging, cool-down, the report. No phone needed."""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import load_tool

# The fake adb: state lives in $FAKE_ADB_DIR (calls.jsonl, log.txt, sdcard/, running, behaviour.json).
# `am start ... --es models NAME` plays the app for NAME as behaviour.json says: "ok" (a row and
# DONE), "crash" (the process dies: no DONE, no file), "garbage" (DONE but an unreadable file).
FAKE_ADB = r'''
import json, os, shutil, sys
from pathlib import Path
d = Path(os.environ["FAKE_ADB_DIR"])
argv = sys.argv[1:]
with open(d / "calls.jsonl", "a") as f:
    f.write(json.dumps(argv) + "\n")
if argv[:1] == ["-s"]:
    argv = argv[2:]
sd = d / "sdcard"
def local(remote):
    return sd / remote.lstrip("/")
behaviour = json.loads((d / "behaviour.json").read_text()) if (d / "behaviour.json").exists() else {}
if argv == ["devices"]:
    print("List of devices attached\nFAKE123\tdevice\n")
elif argv[:1] == ["install"]:
    print("Success")
elif argv[:1] == ["push"]:
    local(argv[2]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(argv[1], local(argv[2]))
elif argv[:1] == ["pull"]:
    if not local(argv[1]).exists():
        print("adb: error: remote object does not exist", file=sys.stderr); sys.exit(1)
    shutil.copy(local(argv[1]), argv[2])
elif argv[:2] == ["logcat", "-c"]:
    (d / "log.txt").write_text("")
elif argv[:2] == ["logcat", "-d"]:
    print((d / "log.txt").read_text() if (d / "log.txt").exists() else "", end="")
elif argv[:2] == ["shell", "pidof"]:
    if (d / "running").exists():
        print("4242")
elif argv[:3] == ["shell", "am", "force-stop"]:
    (d / "running").unlink(missing_ok=True)
elif argv[:3] == ["shell", "am", "start"]:
    name = argv[argv.index("--es") + 2] if argv[argv.index("--es") + 1] == "models" else None
    what = behaviour.get(name, "ok")
    out = sd / "sdcard/Android/data/dev.vqexport.demo/files/results.json"
    if what == "crash":
        (d / "running").unlink(missing_ok=True)
    elif what == "hang":
        (d / "running").write_text("")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        if what == "garbage":
            out.write_text("{not json")
        else:
            row = {"model": name, "status": "ok", "format": name.rsplit(".", 1)[1],
                   "file_bytes": 2048 * (1 + len(name)), "init_ms": 3.0, "first_run_ms": 1.5, "pid": 4242,
                   "process_model_index": 0,
                   "latency_ms": {"runs": 50, "p50": 0.5 + len(name) / 100, "p95": 0.7, "p99": 0.9, "std": 0.05},
                   "accuracy": {"top1": 0.9, "correct": 900, "count": 1000},
                   "memory": {"before": {"vm_rss_kb": 1000}, "peak_load": {"vm_rss_kb": 3048},
                              "after": {"vm_hwm_kb": 4096}},
                   "device_state": {"before": {"thermal_status": "none", "charging": False}}}
            out.write_text(json.dumps({"schema": "vqexport-android-bench/2",
                                       "device": {"manufacturer": "Fake", "model": "P1"},
                                       "settings": {"warmup": 10}, "results": [row]}))
        (d / "running").unlink(missing_ok=True)
        with open(d / "log.txt", "a") as f:
            f.write("11-30 12:00:00.000  4242  4243 I VQXBENCH: RESULT {}\n")
            f.write("11-30 12:00:00.001  4242  4243 I VQXBENCH: DONE "
                    "/sdcard/Android/data/dev.vqexport.demo/files/results.json\n")
elif argv[:2] == ["shell", "rm"]:
    local(argv[-1]).unlink(missing_ok=True)
'''


@pytest.fixture
def bench(tmp_path, monkeypatch):
    mod = load_tool("android_bench.py")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(f"#!{sys.executable}\n{FAKE_ADB}")
    adb.chmod(0o755)
    state = tmp_path / "adb-state"
    state.mkdir()
    monkeypatch.setenv("FAKE_ADB_DIR", str(state))
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    sleeps = []
    monkeypatch.setattr(mod.time, "sleep", lambda s: sleeps.append(s))
    mod.sleeps = sleeps
    mod.state = state
    return mod


def calls(state: Path) -> list[list[str]]:
    return [json.loads(ln) for ln in (state / "calls.jsonl").read_text().splitlines()]


def models(tmp_path: Path, *names: str) -> list[str]:
    out = []
    for n in names:
        p = tmp_path / n
        p.write_bytes(b"model")
        out.append(str(p))
    return out


def test_one_fresh_process_per_model_and_merged_results(bench, tmp_path):
    files = models(tmp_path, "a.tflite", "b.vqm", "c.tflite")
    out = tmp_path / "out"
    rc = bench.main(files + ["--no-install", "--out", str(out), "--runs", "7", "--cooldown", "5"])
    assert rc == 0
    cs = calls(bench.state)
    starts = [c for c in cs if c[2:5] == ["shell", "am", "start"]]
    assert len(starts) == 3, "one launch per model"
    for start, name in zip(starts, ["a.tflite", "b.vqm", "c.tflite"], strict=True):
        assert start[:2] == ["-s", "FAKE123"]
        assert "-S" in start and "-W" in start, "stop the old process, wait for the launch"
        i = start.index("--es")
        assert start[i + 1:i + 3] == ["models", name], "exactly one model per process"
        assert start[start.index("runs") + 1] == "7"
    # each launch: old results removed and log cleared before, the file pulled after
    seq = [c[2] if c[2] != "shell" else " ".join(c[3:5]) for c in cs if c[:2] == ["-s", "FAKE123"]]
    text = " ".join(seq)
    assert text.count("rm -f logcat am start") == 3, text
    assert len([c for c in cs if "pull" in c]) == 3
    assert not any("install" in c for c in cs), "--no-install"
    assert bench.sleeps.count(5) == 2, "cool-down between models, not before the first"
    doc = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in doc["results"]] == ["a.tflite", "b.vqm", "c.tflite"]
    assert doc["one_process_per_model"] is True and doc["device"]["model"] == "P1"
    assert sorted(p.name for p in (out / "raw").iterdir()) == ["a.tflite.json", "b.vqm.json", "c.tflite.json"]
    md = (out / "android_bench.md").read_text()
    assert "| a.tflite | tflite | " in md and "| 2.0 |" in md, md  # load peak: (3048 - 1000) / 1024 MB
    assert (out / "android_bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_crash_or_bad_file_is_a_row_and_the_next_model_still_runs(bench, tmp_path):
    (bench.state / "behaviour.json").write_text(json.dumps({"bad.tflite": "crash", "junk.vqm": "garbage"}))
    files = models(tmp_path, "bad.tflite", "junk.vqm", "good.tflite")
    out = tmp_path / "out"
    assert bench.main(files + ["--no-install", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [(r["model"], r["status"]) for r in rows] == [("bad.tflite", "error"), ("junk.vqm", "error"),
                                                         ("good.tflite", "ok")]
    assert "process died" in rows[0]["error"]
    assert "no usable results.json" in rows[1]["error"]


def test_a_hung_app_times_out_as_a_row_and_is_stopped(bench, tmp_path, monkeypatch):
    (bench.state / "behaviour.json").write_text(json.dumps({"slow.tflite": "hang"}))
    clock = iter(range(0, 10000, 50))
    monkeypatch.setattr(bench.time, "monotonic", lambda: next(clock))
    out = tmp_path / "out"
    assert bench.main(models(tmp_path, "slow.tflite") + ["--no-install", "--out", str(out), "--timeout", "120"]) == 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert rows[0]["status"] == "error" and "no DONE from the app in 120 s" in rows[0]["error"]
    assert any(c[2:5] == ["shell", "am", "force-stop"] for c in calls(bench.state))


def test_without_model_files_every_bundled_model_runs_once(bench, tmp_path):
    apk = tmp_path / "app.apk"
    with zipfile.ZipFile(apk, "w") as z:
        for n in ["assets/models/m1.tflite", "assets/models/m2.vqm", "assets/eval/mnist1000.vqds", "classes.dex"]:
            z.writestr(n, b"x")
    out = tmp_path / "out"
    assert bench.main(["--apk", str(apk), "--out", str(out)]) == 0
    cs = calls(bench.state)
    assert any(c[2:3] == ["install"] for c in cs)
    names = [c[c.index("--es") + 2] for c in cs if c[2:5] == ["shell", "am", "start"]]
    assert names == ["m1.tflite", "m2.vqm"]


def test_no_adb_or_bad_input_is_one_line_and_exit_2(bench, tmp_path, monkeypatch, capsys):
    f = models(tmp_path, "a.tflite")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert bench.main(f + ["--no-install"]) == 2
    assert capsys.readouterr().out.startswith("android_bench: no adb on PATH")
    assert bench.main([str(tmp_path / "missing.tflite"), "--no-install"]) == 2
    assert "missing.tflite: no such model file" in capsys.readouterr().out
    (tmp_path / "notes.txt").write_text("x")
    assert bench.main([str(tmp_path / "notes.txt"), "--no-install"]) == 2
    assert bench.main(["--from-json", str(tmp_path / "notes.txt")]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 2 and "not a readable results.json" in out


def test_report_from_json_plots_only_rows_that_ran(bench, tmp_path):
    doc = {"schema": "vqexport-android-bench/2", "results": [
        {"model": "a.tflite", "format": "tflite", "status": "ok", "file_bytes": 4096,
         "latency_ms": {"p50": 0.4}, "accuracy": {"top1": 0.98}},
        {"model": "b.vqm", "format": "vqm", "status": "ok", "file_bytes": 1024, "decode_ms": 2.0},
        {"model": "c.onnx", "status": "error", "error": "ONNX Runtime is not in this APK"}]}
    assert bench.plot(doc, tmp_path / "p.png") == 1
    md = bench.markdown(doc)
    assert "| c.onnx | - |" in md and "error: ONNX Runtime is not in this APK" in md
    assert "decoded in 2.0 ms" in md and "98.0%" in md

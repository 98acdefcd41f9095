"""`vqexport to-tflite` from the command line on the route list of issue 12, as a user runs it.

    .venv/bin/python tools/tflite_cli_zoo.py --dir /tmp/zoo --out docs/results/tflite_cli_zoo.jsonl
    .venv/bin/python tools/tflite_cli_zoo.py --models vgg16 --dir /tmp/zoo --out /tmp/vgg.jsonl
    .venv/bin/python tools/tflite_cli_zoo.py --table docs/results/tflite_cli_zoo.jsonl

Per model (seeded random weights, from tools/tflite_route.py's list; the plain-torch ones from
tests/test_route_models.py):
- saved as TorchScript with its input spec inside (torch.jit.script, or torch.jit.trace when the
  model does not script), which is the file a user hands to vqexport; when the CLI refuses that
  file, as a torch.export .pt2 (what its error says to do), and the row says so;
- `vqexport to-tflite model.pt --method kmeans --k 16 --json` (whole model, BatchNorm folded, the
  CLI's defaults otherwise) in a child process: exit code and the one-line error, wall seconds,
  peak RSS (the child's VmHWM), the report's bytes against the size bound;
- the .tflite run in LiteRT (vqexport's runtime: channels-last input as the metadata says) against
  to_torch(cm) of the .vqm that the CLI writes beside it: max |diff| / max |logit| and top-1
  agreement on --inputs seeded N(0, 1) inputs.
The float32 parameter bytes of the model are recorded beside the peak RSS (issue 12's resource
target is stated against them).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from tflite_route import ZOO, build  # noqa: E402 - the route comparison's models, seeded the same way

PLAIN = ["samepad_mobile", "samepad_mobile_dynamic", "transformer_block"]
METHOD = ["--method", "kmeans", "--k", "16"]


def save_user_file(name: str, path: Path, fmt: str) -> tuple[object, tuple, str]:
    """The model as a user's file with its input spec; (module, input shape, how it was saved).

    fmt "torchscript": torch.jit.script, or torch.jit.trace when the model does not script;
    fmt "pt2": torch.export.save (vqexport reads the shape from the program's example input).
    """
    import torch

    from vqexport.layouts import channels_first
    from vqexport.load import EXTRA_FILE

    module, shape = build(name)
    if fmt == "pt2":
        torch.export.save(torch.export.export(module, (torch.zeros(shape),)), str(path))
        return module, shape, "pt2"
    spec = {"input": {"shape": list(shape), "layout": channels_first(len(shape))}}
    try:
        ts, how = torch.jit.script(module), "script"
    except Exception:  # noqa: BLE001 - scripting fails in many ways; tracing is what such a user does next
        ts, how = torch.jit.trace(module, torch.zeros(shape)), "trace"
    torch.jit.save(ts, str(path), _extra_files={EXTRA_FILE: json.dumps(spec)})
    return module, shape, how


def run_cli(args: list[str], workdir: Path) -> dict:
    """The CLI in a child process: rc, wall seconds, peak RSS in MiB, stdout, stderr.

    The peak is the child's VmHWM, polled every 50 ms until it exits. Not os.wait4's ru_maxrss:
    Linux carries the parent's resident set at fork into the child's maxrss across exec, and this
    process holds torch and the models (1.5 GB), which would floor every row there."""
    logs = [workdir / "cli.stdout", workdir / "cli.stderr"]
    peak = 0
    with logs[0].open("w") as out, logs[1].open("w") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "vqexport.cli", *args], stdout=out, stderr=err)
        while p.poll() is None:
            peak = max(peak, _hwm_kib(p.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    return {"rc": p.returncode, "wall_s": round(wall, 1), "peak_rss_mib": round(peak / 1024),
            "stdout": logs[0].read_text(), "stderr": logs[1].read_text()}


def _hwm_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # exited between the poll and the read
        return 0
    return next((int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmHWM:")), 0)



def measure(name: str, workdir: Path, decode: str, n_inputs: int) -> dict:
    """A TorchScript file first, as most users have; when the CLI refuses it, a .pt2 of the same model
    (the error says to), with the TorchScript error kept in the row."""
    row = _measure(name, workdir, decode, n_inputs, "torchscript")
    if row.get("rc") != 0:
        first = row
        row = _measure(name, workdir, decode, n_inputs, "pt2")
        row["torchscript_error"] = f"{first.get('saved_as', 'torchscript')}: {first.get('error', '')}"
    return row


def _measure(name: str, workdir: Path, decode: str, n_inputs: int, fmt: str) -> dict:
    import numpy as np
    import torch

    import vqexport
    from vqexport import to_torch
    from vqexport.evaluate.runtimes import open_runtime
    from vqexport.load import load_model

    row = {"model": name, "decode": decode}
    user_file = workdir / f"{name}.{'pt2' if fmt == 'pt2' else 'pt'}"
    module, shape, row["saved_as"] = save_user_file(name, user_file, fmt)
    row["float32_mib"] = round(sum(p.numel() * 4 for p in module.parameters()) / 2**20, 1)
    out = workdir / f"{name}-{decode}.tflite"
    out.unlink(missing_ok=True)
    cli = run_cli(["to-tflite", str(user_file), *METHOD, "--decode", decode, "-o", str(out), "--json", "--quiet"],
                  workdir)
    row.update({k: cli[k] for k in ("rc", "wall_s", "peak_rss_mib")})
    if cli["rc"] != 0:
        row["error"] = cli["stderr"].strip().splitlines()[-1] if cli["stderr"].strip() else "(no message)"
        return row
    report = json.loads(cli["stdout"])["export"]
    row.update(bytes=report["bytes"], bound_bytes=round(report["bound_bytes"]), within_bound=report["within_bound"],
               ops=len(report["ops"]))
    lm = load_model(user_file)
    cm = vqexport.read_vqm(out.with_suffix(".vqm"))  # the CLI writes the .vqm it exported beside the .tflite
    x = np.random.default_rng(0).standard_normal((n_inputs, *shape[1:])).astype(np.float32)
    with torch.no_grad():
        ref = to_torch(cm, lm)(torch.from_numpy(x)).numpy()
    rt = open_runtime(out, threads=2)
    got = np.concatenate([rt.run(x[i:i + 1]) for i in range(n_inputs)])
    row["rel_diff"] = float(np.abs(got - ref).max() / np.abs(ref).max())
    row["top1_agree"] = int((got.reshape(n_inputs, -1).argmax(1) == ref.reshape(n_inputs, -1).argmax(1)).sum())
    row["inputs"] = n_inputs
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | saved as | decode | converts | wall s | peak RSS MiB | float32 MiB | .tflite bytes | "
             "within bound | rel diff | top-1 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("rc") != 0:
            cells = [r["model"], r.get("saved_as", "-"), r["decode"], f"**no**: {r.get('error', '')}",
                     r.get("wall_s", "-"), r.get("peak_rss_mib", "-"), r.get("float32_mib", "-"), "-", "-", "-", "-"]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
            continue
        lines.append(f"| {r['model']} | {r['saved_as']} | {r['decode']} | yes | {r['wall_s']} | "
                     f"{r['peak_rss_mib']:,} | {r['float32_mib']} | {r['bytes']:,} | "
                     f"{'yes' if r['within_bound'] else '**no**'} | "
                     f"{r['rel_diff']:.1e} | {r['top1_agree']}/{r['inputs']} |")
    ok = sum(r.get("rc") == 0 for r in rows)
    lines.append(f"\n{ok} / {len(rows)} convert.")
    lines += [f"- {r['model']}: its TorchScript file was refused ({r['torchscript_error']}); the row is its .pt2."
              for r in rows if r.get("torchscript_error")]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", default=",".join(ZOO + PLAIN), help="comma-separated (default: all %(default)s)")
    ap.add_argument("--decode", default="once", choices=["once", "every-run", "load"], help="(default: once)")
    ap.add_argument("--inputs", type=int, default=4, help="seeded inputs for the agreement (default: 4)")
    ap.add_argument("--dir", type=Path, help="where the model files and .tflite go")
    ap.add_argument("--out", type=Path, help="append one JSON line per model here")
    ap.add_argument("--table", type=Path, help="print the markdown table of a JSON-lines file and exit")
    args = ap.parse_args(argv)
    if args.table:
        print(table([json.loads(ln) for ln in args.table.read_text().splitlines() if ln.strip()]))
        return 0
    if args.dir is None:
        ap.error("--dir is required to run")
    args.dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        try:
            row = measure(name, args.dir, args.decode, args.inputs)
        except Exception as e:  # noqa: BLE001 - one model's failure is its row; the rest go on
            row = {"model": name, "decode": args.decode, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

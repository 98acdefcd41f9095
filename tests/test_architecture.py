"""The one-way flow, checked on the source: no import cycles, the IR a leaf, each method registered
in every table that needs it. Imports inside functions count: they were how the cycles hid."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "vqexport"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """{module: modules of vqexport it imports}, anywhere in its body."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == "vqexport"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "vqexport":
                    continue
                for alias in node.names:  # `from . import x` names a module when x is one
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in modules else target)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(_imports()) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_ir_is_a_leaf():
    assert _imports()["vqexport.ir"] <= {"vqexport.bitpack"}
    assert _imports()["vqexport.util.parallel"] == set()


def test_methods_know_nothing_of_formats_or_torch():
    graph = _imports()
    for name, deps in graph.items():
        if name.startswith("vqexport.methods"):
            # util.parallel: threads for independent fits, itself a leaf (below)
            assert all(d.startswith(("vqexport.methods", "vqexport.ir", "vqexport.bitpack", "vqexport.errors",
                                     "vqexport.util.parallel")) for d in deps), (name, deps)
            rel = Path(*name.split("."))
            path = ROOT.parent / (rel / "__init__.py" if (ROOT.parent / rel).is_dir() else rel.with_suffix(".py"))
            source = path.read_text()
            assert "import torch" not in source and "import onnx" not in source, name


@pytest.mark.parametrize("table", ["vqexport.formats.onnx_decode", "vqexport.formats.tflite.decode"])
def test_every_method_has_a_decode_chain_in_every_format(table):
    import importlib

    from vqexport.methods import registry

    assert set(importlib.import_module(table).CHAINS) == set(registry.NAMES)


def test_registry_codes_and_configs():
    from vqexport.errors import ConfigError
    from vqexport.methods import registry

    assert registry.CODE_OF["raw"] == 0 and len(set(registry.CODE_OF.values())) == len(registry.CODE_OF)
    for name in registry.NAMES:
        module = registry.get(name)
        cfg = module.Config()
        assert cfg.method == name and registry.config(name, **cfg.fields()) == cfg
        assert set(module.TABLE) <= {"k", "d", "rows", "stages", "rank", "bits"}
        for other in {"k", "d", "rows", "stages", "rank", "codebook_dtype"} - set(cfg.settings()):
            with pytest.raises(ConfigError, match=f"{other} has no effect with method {name}"):
                registry.config(name, **{other: 4})

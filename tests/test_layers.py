"""The package layout holds: no import cycle, no import up the layers, no script loaded by the
library. Every import counts, also one inside a function (a cycle hidden there is still a
cycle), and ``from package import name`` is an import of the submodule when ``name`` is one.

The layers, lowest first (``transfer/__init__.py`` draws the data flow they follow):
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("datasets", "models", "transfer")

#: A module may import its own package's modules and anything of a lower layer; packages that
#: share a layer are independent of each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("transfer.errors",),
    ("transfer.atomic",),
    ("transfer.console",),
    ("transfer.runtime", "transfer.stats"),
    ("datasets",),
    ("models",),
    ("transfer.features", "transfer.classifiers"),
    ("transfer.records",),
    ("transfer.protocols",),
    ("transfer.sweep", "transfer.report"),
)
#: What ``datasets`` and ``models`` may take from ``transfer``: the leaves only.
LEAVES = ("transfer.errors", "transfer.atomic", "transfer.console")


def module_names(root: Path = REPO) -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages."""
    names = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names[".".join(parts)] = path
    return names


def imports_of(path: Path, name: str, known: Iterable[str]) -> set[str]:
    """The project modules ``path`` (module ``name``) imports, anywhere in the file."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a module inside
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    names = module_names(root)
    return {name: imports_of(path, name, names) for name, path in names.items()}


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a closed path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the layer entry the module belongs to)."""
    matches = [(len(entry), index, entry) for index, layer in enumerate(LAYERS)
               for entry in layer if module == entry or module.startswith(entry + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no layer: add its package to LAYERS")
    _, index, entry = max(matches)
    return index, entry


def layer_violations(graph: Mapping[str, Iterable[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        if module == "transfer":  # the package root: a docstring, imports nothing
            continue
        level, entry = layer_of(module)
        for target in sorted(targets):
            if target == "transfer":
                problems.append(f"{module} imports the transfer package root")
                continue
            target_level, target_entry = layer_of(target)
            if module.split(".")[0] in ("datasets", "models") and target.startswith("transfer") \
                    and target_entry not in LEAVES:
                problems.append(f"{module} imports {target}: datasets and models may take only "
                                f"{', '.join(LEAVES)} from transfer")
            elif target_level > level or (target_level == level and target_entry != entry):
                problems.append(f"{module} ({entry}) imports {target} ({target_entry}), "
                                "which is not below it")
    return problems


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"x2"}, "x2": {"x"}}) == ["x", "x2", "x"]


def test_the_layer_check_names_an_import_up_the_layers():
    graph = {"transfer.stats.metrics": {"transfer.protocols.linear"},
             "models.loader": {"transfer.runtime.device"},
             "transfer.features.cache": {"transfer.classifiers.protonet"},
             "transfer.sweep.plan": {"transfer.protocols.linear", "transfer.records.results"}}
    problems = layer_violations(graph)  # sorted by the importing module
    assert len(problems) == 3
    assert problems[0].startswith("models.loader imports transfer.runtime.device: datasets and "
                                  "models may take only transfer.errors, transfer.atomic, "
                                  "transfer.console")
    assert "imports transfer.classifiers.protonet (transfer.classifiers)" in problems[1]
    assert problems[2].startswith("transfer.stats.metrics (transfer.stats) imports "
                                  "transfer.protocols.linear")


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 100  # the walk found the project
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_import_climbs_the_layers():
    assert layer_violations(import_graph()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_the_library_never_loads_a_script(package):
    """Scripts are front ends: the library may run one as a command, never import it."""
    for path in (REPO / package).rglob("*.py"):
        text = path.read_text()
        assert "spec_from_file_location" not in text, path
        assert "runpy" not in text, path


def test_scripts_are_thin_and_modules_small():
    """The user's scripts (top level and the protocol folders) are front ends under 80 lines;
    no module of the packages or of tools/ is over 400."""
    folders = ("detectron2-configs", "semantic-segmentation", "surface-normal-estimation")
    scripts = [*REPO.glob("*.py"), *(p for f in folders for p in (REPO / f).glob("*.py"))]
    assert len(scripts) >= 15
    long_scripts = {str(p.relative_to(REPO)): n for p in scripts
                    if (n := len(p.read_text().splitlines())) >= 80}
    assert long_scripts == {}
    big = {str(p.relative_to(REPO)): n for package in (*PACKAGES, "tools")
           for p in (REPO / package).rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert big == {}

"""The package's layers: no import cycle between modules, and no import from a lower layer into a higher one.

The layers, lowest first, as docs/architecture.md names them. A module may
import from its own layer and the ones below; the API layer (run, estimators,
cli) may import anything. Imports inside functions count too: they are how
the optional and heavy layers (Ray, tqdm) are loaded late, and they must
still point downwards.
"""
import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parent.parent / "streamfm"

LAYERS = [
    ("errors", "progress", "runtime", "__main__"),
    ("io",),
    ("preprocess",),
    ("coding",),
    ("kernels",),
    ("models",),
    ("store",),
    ("inference",),
    ("training",),
    ("engines",),
    ("run", "estimators", "estimator_params", "estimator_store", "cli", "__init__"),
]
# ``__main__`` only runs the CLI: it is the entry point, not a layer of its own
ENTRY_POINTS = {"streamfm.__main__"}


def layer_of(module: str) -> int:
    part = module.split(".")[1] if module.count(".") else "__init__"
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: pathlib.Path) -> set[str]:
    """The streamfm modules a source file imports, resolved to module names (relative imports included)."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def _runtime_nodes(tree):
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only: not an import at run time)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip |= {id(n) for n in ast.walk(node)}
    return [n for n in ast.walk(tree) if id(n) not in skip]


def imports_in(source: str, me: str, is_package: bool) -> set[str]:
    package = me if is_package else me.rsplit(".", 1)[0]
    found = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "streamfm"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "streamfm":
                continue
            for a in node.names:  # "from .pkg import module" names a module
                sub = f"{target}.{a.name}"
                found.add(sub if _exists(sub) else target)
    # the package root defines __version__ and the lazy API: importing the version from it is no layer's business
    return {m for m in found if _exists(m) and m not in (me, "streamfm")}


def _exists(module: str) -> bool:
    p = PKG.parent.joinpath(*module.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PKG.rglob("*.py")}


def test_every_module_is_in_a_layer_and_imports_only_downwards():
    bad = []
    for mod, deps in graph().items():
        if mod in ENTRY_POINTS:
            continue
        for d in deps:
            if d in ENTRY_POINTS:
                continue
            if layer_of(d) > layer_of(mod):
                bad.append(f"{mod} (layer {layer_of(mod)}) imports {d} (layer {layer_of(d)})")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("planted", ["from ..training.loop import Trainer", "from ..run import train",
                                     "import streamfm.cli"])
def test_the_check_finds_a_planted_upward_import(planted):
    """The walk is not vacuous: an upward import planted in a low layer is found and resolved."""
    source = (PKG / "io" / "chunk.py").read_text() + "\n" + planted + "\n"
    deps = imports_in(source, "streamfm.io.chunk", False)
    assert any(layer_of(d) > layer_of("streamfm.io.chunk") for d in deps), deps


def test_modules_stay_small_or_say_why():
    """No module over ~400 lines, except readers and kernels whose docstring says why."""
    long = []
    for p in PKG.rglob("*.py"):
        n = len(p.read_text().splitlines())
        if n <= 420:
            continue
        doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        if "one module" not in doc.lower():
            long.append(f"{module_name(p)}: {n} lines")
    assert not long, "long modules without a reason in their docstring: " + ", ".join(long)

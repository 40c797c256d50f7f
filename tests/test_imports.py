"""The package's import graph shows its design: no cycles; the core, the objectives and the other modality
never imported by a modality-agnostic or sibling package; the training loop reached from nowhere it must not
be; and no script edits sys.path to find the project's packages."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("seqcpc", "recipes", "data_prep", "benchmarks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module an import statement in the file names, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return {m: {i for i in imports_of(p) if i in files and i != m} for m, p in files.items()}


GRAPH = graph()


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_holds_the_packages():
    assert {"seqcpc.core.model", "seqcpc.train.loop", "seqcpc.audio.modality", "seqcpc.image.modality"} <= set(GRAPH)


def test_no_import_cycle():
    """Package __init__ modules only re-export, so the graph is checked between the modules themselves."""
    graph = {m: {i for i in deps if not (ROOT / Path(*i.split(".")) / "__init__.py").exists()}
             for m, deps in GRAPH.items()}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for dep in graph.get(m, ()):
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])


FORBIDDEN = [
    # (importing package, imported package, why)
    ("seqcpc.core", "seqcpc.audio", "the core is modality-agnostic"),
    ("seqcpc.core", "seqcpc.image", "the core is modality-agnostic"),
    ("seqcpc.objectives", "seqcpc.audio", "objectives are modality-agnostic"),
    ("seqcpc.objectives", "seqcpc.image", "objectives are modality-agnostic"),
    ("seqcpc.eval", "seqcpc.audio", "shared evaluation is modality-agnostic"),
    ("seqcpc.eval", "seqcpc.image", "shared evaluation is modality-agnostic"),
    ("seqcpc.audio", "seqcpc.image", "one modality never imports another"),
    ("seqcpc.image", "seqcpc.audio", "one modality never imports another"),
    ("seqcpc.core", "seqcpc.train", "the core does not know the loop"),
    ("seqcpc.objectives", "seqcpc.train", "objectives do not know the loop"),
    ("seqcpc.eval", "seqcpc.train", "evaluation does not know the loop"),
    ("seqcpc.train", "seqcpc.audio", "the loop reaches a modality only through its registry entry"),
    ("seqcpc.train", "seqcpc.image", "the loop reaches a modality only through its registry entry"),
    ("seqcpc.modalities", "seqcpc.audio", "the registry imports its entries by name, on first use"),
    ("seqcpc.modalities", "seqcpc.image", "the registry imports its entries by name, on first use"),
    ("seqcpc.config", "seqcpc.audio", "the config loader reaches modalities through the registry"),
    ("seqcpc.config", "seqcpc.image", "the config loader reaches modalities through the registry"),
    ("seqcpc.fewshot", "seqcpc.audio", "few-shot learners and evaluation are modality-agnostic"),
    ("seqcpc.fewshot", "seqcpc.image", "few-shot learners and evaluation are modality-agnostic"),
    ("seqcpc.core", "seqcpc.objectives", "the core sits below the objectives, which build on it"),
    ("seqcpc.core", "seqcpc.fewshot", "the core sits below the objectives, which build on it"),
    ("seqcpc.train", "seqcpc.objectives.cpc", "the loop reaches an objective only through its registry entry"),
    ("seqcpc.config", "seqcpc.objectives.cpc", "the config loader reaches objectives through their registry"),
    ("seqcpc.objectives.registry", "seqcpc.objectives.cpc", "the registry imports its entries by name, on first use"),
]


@pytest.mark.parametrize("importer, imported, why", FORBIDDEN, ids=[f"{a}-{b}" for a, b, _ in FORBIDDEN])
def test_forbidden_imports(importer, imported, why):
    bad = sorted(f"{m} imports {d}" for m, deps in GRAPH.items() if under(m, importer)
                 for d in deps if under(d, imported))
    assert not bad, f"{why}: {bad}"


def test_no_sys_path_edits():
    bad = [str(p.relative_to(ROOT)) for pkg in (*PACKAGES, "tests") for p in (ROOT / pkg).rglob("*.py")
           if "sys.path" in p.read_text() and p.name != "test_imports.py"]
    assert not bad, f"packages are installed (pip install -e .), so nothing edits sys.path: {bad}"


def objective_modules() -> set[str]:
    """The modules of the built-in objectives' registry entries."""
    from seqcpc.objectives import registry

    return {path.split(":")[0] for path in registry.BUILTIN.values()}


def test_no_concrete_objective_from_a_modality_the_loop_or_the_loader():
    """A modality offers parts and an objective assembles them: no modality module (other than an objective that
    lives in a modality's package, such as the image pretext tasks), no part of the loop and not the config
    loader imports a concrete objective."""
    concrete = objective_modules()
    importers = [m for m in GRAPH if m not in concrete and any(
        under(m, p) for p in ("seqcpc.audio", "seqcpc.image", "seqcpc.train", "seqcpc.config", "seqcpc.modalities",
                              "seqcpc.assembly", "seqcpc.core", "seqcpc.eval"))]
    bad = sorted(f"{m} imports {d}" for m in importers for d in GRAPH[m] if d in concrete)
    assert not bad, bad


def test_no_cli_from_library_modules():
    """The command line is the top: library modules, recipes and data preparation take argument types from
    seqcpc.argtypes, never from seqcpc.cli."""
    bad = sorted(f"{m} imports {d}" for m, deps in GRAPH.items() if m not in ("seqcpc.cli", "seqcpc.__main__")
                 for d in deps if under(d, "seqcpc.cli"))
    assert not bad, bad


def test_no_objective_name_compared_outside_its_entry():
    """No module of the package compares an objective (anything read from a name with "objective" in it) with a
    built-in objective's name, except that objective's own module: what an objective needs is a property of its
    registry entry."""
    import ast

    from seqcpc.objectives import registry

    modules = {name: path.split(":")[0] for name, path in registry.BUILTIN.items()}
    bad = []
    for path in (ROOT / "seqcpc").rglob("*.py"):
        module = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare) or "objective" not in ast.unparse(node):
                continue
            for side in [node.left, *node.comparators]:
                values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                named = {v.value for v in values if isinstance(v, ast.Constant) and v.value in modules}
                bad += [f"{module}:{node.lineno} compares with {n!r}" for n in named if modules[n] != module]
    assert not bad, bad

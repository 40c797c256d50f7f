"""Parts of pages written from files of the repository, read as text (nothing is imported or run): the
benchmark results (benchmarks/results/*.md, as the benchmark scripts write them), the import rules (the
FORBIDDEN list of tests/test_imports.py) and the modules of the package with the first sentence of each
docstring."""
import ast
from pathlib import Path

from seqcpc_markdown import cell, code
from seqcpc.eval.report import markdown_table


def benchmark_results(folder: Path) -> str:
    """Every results file, in name order, as a section with the target bench-NAME: `# name`, the line of
    machine facts, the table. A file the scripts add later appears without an edit."""
    parts = []
    for path in sorted(Path(folder).glob("*.md")):
        lines = path.read_text().strip().splitlines()
        body = [("##" + line) if line.startswith("#") else line for line in lines[1:]]  # under the page's level 2
        parts.append(f"(bench-{path.stem})=\n### `{path.stem}`\n\nFrom `benchmarks/results/{path.name}`.\n"
                     + "\n".join(body))
    return "\n\n".join(parts) + "\n"


def forbidden_imports(test_file: Path) -> list:
    """The (importer, imported, why) triples of the FORBIDDEN assignment in tests/test_imports.py."""
    tree = ast.parse(Path(test_file).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FORBIDDEN" for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{test_file} has no FORBIDDEN list")


def import_rules(test_file: Path) -> str:
    rows = [[code(importer), code(imported), cell(why)] for importer, imported, why in forbidden_imports(test_file)]
    return markdown_table(["modules under", "never import", "why"], rows) + "\n"


def first_sentence(doc: str) -> str:
    paragraph = " ".join((doc or "").split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[:end + 1]


def module_tables(package: Path) -> str:
    """One table per folder of the package (the top level first): each module and the first sentence of its
    docstring; a folder's own docstring (its __init__.py) introduces its table."""
    parts = []
    root = Path(package)
    for folder in [root, *sorted(p for p in root.iterdir() if (p / "__init__.py").is_file())]:
        docs = {p.name: ast.get_docstring(ast.parse(p.read_text())) for p in sorted(folder.glob("*.py"))}
        name = folder.relative_to(root.parent).as_posix()
        rows = [[code(f"{name}/{file}"), cell(first_sentence(doc))] for file, doc in docs.items()
                if file not in ("__init__.py", "__main__.py")]
        parts += [f"### `{name}/`", cell(first_sentence(docs.get("__init__.py"))),
                  markdown_table(["module", "what it holds"], rows)]
    return "\n\n".join(p for p in parts if p) + "\n"

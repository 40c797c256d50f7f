"""The Sphinx extension that fills in the generated parts of the pages.

A page asks for a generated part with an empty fenced block, ```{generated} NAME```; when Sphinx reads the page
the block is replaced by the Markdown of NAME (see PARTS), so the part is parsed, given anchors and checked like
the text around it. An unknown NAME stops the build; without this extension the block is an unknown directive,
which stops a -W build too.
"""
import re
from pathlib import Path

from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```\{generated\}[ \t]+(\S+)[ \t]*\n```[ \t]*$", re.MULTILINE)


def objective_registry():
    """seqcpc.objectives.registry (a function, so a test can give the generators a registry of its own)."""
    from seqcpc.objectives import registry

    return registry


def cli_part() -> str:
    from seqcpc.cli import build_parser
    from seqcpc_cli import cli_reference

    return cli_reference(build_parser())


def config_part() -> str:
    from seqcpc import modalities
    from seqcpc.config import COMMON
    from seqcpc_config import config_reference

    return config_reference(COMMON, {n: modalities.get(n) for n in modalities.names()}, objective_registry())


def benchmarks_part() -> str:
    from seqcpc_repo import benchmark_results

    return benchmark_results(ROOT / "benchmarks" / "results")


def import_rules_part() -> str:
    from seqcpc_repo import import_rules

    return import_rules(ROOT / "tests" / "test_imports.py")


def modules_part() -> str:
    from seqcpc_repo import module_tables

    return module_tables(ROOT / "seqcpc")


PARTS = {"cli": cli_part, "config": config_part, "benchmarks": benchmarks_part, "import-rules": import_rules_part,
         "modules": modules_part}


def fill_in(app, docname, source):
    def generate(match):
        if match.group(1) not in PARTS:
            raise ExtensionError(f"{docname}: no generated part {match.group(1)!r}; known: {', '.join(PARTS)}")
        return PARTS[match.group(1)]()

    source[0] = FENCE.sub(generate, source[0])


def setup(app):
    app.connect("source-read", fill_in)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

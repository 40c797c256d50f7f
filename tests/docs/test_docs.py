"""The docs site against the code: every config key the pages (and the README) name still exists, the
generated references cover every key and every command-line flag, and the generators read comments, ranges and
objective sections as the code writes them. `make docs` builds the site itself (warnings are errors)."""
import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import seqcpc_docs
from seqcpc import modalities
from seqcpc.cli import build_parser
from seqcpc.config import COMMON, has_key
from seqcpc.fields import choice, number
from seqcpc_cli import cli_reference, subcommands
from seqcpc_config import rows
from seqcpc_repo import forbidden_imports

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
PAGES = [p for p in PAGES if "_build" not in p.parts]

CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)  # inline code and fenced blocks
# a dotted key of a config section; not a path (train.py), an attribute of a module (seqcpc.config) or a call
# (model.embed(x))
KEY = re.compile(r"(?<![\w./-])((?:model|objective|data|train|optim|probe|fabric|prepare)(?:\.\w+)+)(?!\w*\()")
FILES = {"py", "md", "json", "yaml", "csv", "png", "txt", "tsv", "npy", "ckpt"}  # model.py is a file, not a key


def documented_keys() -> dict:
    """key -> the pages (relative paths) that name it in code."""
    found = {}
    for page in PAGES:
        for match in CODE.finditer(page.read_text()):
            for key in KEY.findall(match.group(2)):
                if key.rsplit(".", 1)[1] in FILES:
                    continue
                found.setdefault(key, set()).add(page.relative_to(ROOT).as_posix())
    return found


def section_keys(cls, prefix: str) -> dict:
    """Every dotted key of dataclass `cls` under `prefix` (nested sections too) -> its type."""
    keys = {}
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        keys[f"{prefix}.{f.name}"] = tp
        if dataclasses.is_dataclass(tp):
            keys.update(section_keys(tp, f"{prefix}.{f.name}"))
    return keys


def in_section(cls, prefix: str, key: str) -> bool:
    """Whether `key` is a key of the section, or lies under one of its free-form mappings (prepare.options.*)."""
    keys = section_keys(cls, prefix)
    return key in keys or any(key.startswith(k + ".") and (tp is dict or typing.get_origin(tp) is dict)
                              for k, tp in keys.items())


def objective_key_exists(registry, key: str) -> bool:
    """objective.name chooses the objective; any other key must be in the section of an objective on a modality
    that supports it."""
    if key == "objective.name":
        return True
    entries = [registry.get(n) for n in registry.names()]
    return any(in_section(registry.section_class(entry, modalities.get(m)), "objective", key)
               for entry in entries for m in modalities.names() if registry.supports(entry, modalities.get(m)))


def key_exists(key: str) -> bool:
    section = key.split(".")[0]
    if section in COMMON:
        return in_section(COMMON[section], section, key)
    return any(has_key(modalities.get(m), key) for m in modalities.names())


def test_the_pages_name_config_keys_at_all():
    keys = documented_keys()
    assert {"model.size", "objective.name", "data.min_clip", "train.deterministic", "probe.ceiling_steps"} <= set(keys)


def test_every_config_key_the_pages_name_exists():
    missing = {k: sorted(pages) for k, pages in documented_keys().items()
               if not k.startswith("objective.") and not key_exists(k)}
    assert not missing, f"keys named in the docs that the config no longer has: {missing}"


def test_every_objective_key_the_pages_name_exists():
    registry = seqcpc_docs.objective_registry()
    missing = {k: sorted(pages) for k, pages in documented_keys().items()
               if k.startswith("objective.") and not objective_key_exists(registry, k)}
    assert not missing, f"objective keys named in the docs that no objective has: {missing}"


def test_the_readmes_links_point_at_files_of_the_repository():
    """The README is read on GitHub, where its links are relative paths; Sphinx checks the site's own links."""
    targets = [t for t in re.findall(r"\]\(([^)\s#]+)", (ROOT / "README.md").read_text()) if "://" not in t]
    assert targets and [t for t in targets if not (ROOT / t).exists()] == []


def sections_of(markdown: str) -> dict:
    """`## `title`` heading -> the text under it, for a generated reference."""
    parts = re.split(r"^## `([^`]+)`\s*$", markdown, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_cli_reference_lists_every_subcommand_and_every_flag_of_its_usage():
    parser = build_parser()
    sections = sections_of(cli_reference(parser))
    parsers = {"seqcpc": parser, **{f"seqcpc {name}": sub for name, (_, sub) in subcommands(parser).items()}}
    assert set(parsers) == set(sections) and len(parsers) >= 6
    for command, p in parsers.items():
        flags = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", p.format_usage()))  # usage names every option
        assert flags, command
        assert {f for f in flags if f"`{f}`" not in sections[command]} == set(), command


def test_the_config_reference_lists_every_key_of_every_section():
    text = seqcpc_docs.config_part()
    sections = {name: (cls, name) for name, cls in COMMON.items()}
    for m in modalities.names():
        entry = modalities.get(m)
        sections.update({f"{m}: {part}": (cls, part) for part, cls in
                         (("model", entry.model_config), ("data", entry.data_config), ("probe", entry.probe_config))})
    for cls, prefix in sections.values():
        assert {k for k in section_keys(cls, prefix) if f"`{k}`" not in text} == set(), prefix


@dataclass
class ViewsSection:
    """Views of the fake objective."""
    crop: float = number(0.5, above=0, max=1)  # share of the area kept


@dataclass
class Commented:
    """A section written as the config dataclasses are."""
    plain: int = number(1, min=1)  # a trailing comment
    # a comment above,
    # on two lines
    above: str = choice("a", ["a", "b"])
    spans: list[int] = field(default_factory=lambda: [1,
                                                      2])  # on the field's last line
    bare: bool = False
    views: ViewsSection = field(default_factory=lambda: ViewsSection(crop=0.25))


def test_rows_read_types_defaults_ranges_and_comments_from_the_source():
    by_key = {r[0]: r for r in rows(Commented, "x")}
    assert by_key["`x.plain`"] == ["`x.plain`", "int", "`1`", r"\>= 1", "a trailing comment"]
    assert by_key["`x.above`"][2:] == ["`a`", "one of `a`, `b`", "a comment above, on two lines"]
    assert by_key["`x.spans`"][1:3] == ["list of int", "`[1, 2]`"]
    assert by_key["`x.spans`"][4] == "on the field's last line"
    assert by_key["`x.bare`"][1:] == ["bool", "`false`", "", ""]
    # a nested section: its docstring, then its keys with the defaults of the instance that holds them
    assert by_key["`x.views`"][1:] == ["section", "", "", "Views of the fake objective."]
    assert by_key["`x.views.crop`"][2:] == ["`0.25`", r"\> 0 and \<= 1", "share of the area kept"]


@dataclass(frozen=True)
class FakeObjective:
    name: str
    summary: str
    config: type
    modalities: tuple


class FakeRegistry:
    """The objective registry's API: names, get, supports, section_class (which may add the modality's views)."""

    ENTRIES = {"predict": FakeObjective("predict", "predicts what comes next", Commented, ("audio", "image")),
               "views_only": FakeObjective("views_only", "compares two views", ViewsSection, ("image",))}

    def names(self):
        return list(self.ENTRIES)

    def get(self, name):
        return self.ENTRIES[name]

    def supports(self, entry, modality):
        return modality.name in entry.modalities

    def section_class(self, entry, modality):
        if not self.supports(entry, modality):
            raise ValueError(f"{entry.name} does not support {modality.name}")
        if entry.name == "predict":
            return entry.config
        return dataclasses.make_dataclass(f"{entry.name}_on_{modality.name}", [
            ("temperature", float, field(default=0.2, metadata={"above": 0})),
            ("views", ViewsSection, field(default_factory=ViewsSection))])


def test_the_config_reference_documents_each_objective_on_the_modalities_it_supports(monkeypatch):
    monkeypatch.setattr(seqcpc_docs, "objective_registry", FakeRegistry)
    text = seqcpc_docs.config_part()
    objectives = text.split("## The objective section", 1)[1]
    predict, views_only = objectives.split("### `objective.name: views_only`")
    assert "predicts what comes next" in predict and "On audio and image:" in predict  # one table for both
    assert "`objective.above`" in predict and "`objective.views.crop`" in predict
    assert "compares two views" in views_only and "On image:" in views_only and "audio" not in views_only
    assert "`objective.temperature`" in views_only and "`objective.views.crop`" in views_only


def test_objective_keys_are_checked_through_the_registry():
    registry = FakeRegistry()
    assert objective_key_exists(registry, "objective.name")
    assert objective_key_exists(registry, "objective.temperature")
    assert objective_key_exists(registry, "objective.views.crop")
    assert not objective_key_exists(registry, "objective.prune_ratio")


def test_every_benchmark_result_and_import_rule_is_on_the_site():
    results = seqcpc_docs.benchmarks_part()
    assert {p.stem for p in (ROOT / "benchmarks" / "results").glob("*.md")} == set(
        re.findall(r"^\(bench-(\w+)\)=$", results, flags=re.MULTILINE))
    rules = seqcpc_docs.import_rules_part()
    assert all(f"| `{a}` | `{b}` |" in rules for a, b, _ in forbidden_imports(ROOT / "tests" / "test_imports.py"))

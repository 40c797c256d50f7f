"""The configuration reference, written from the config dataclasses themselves.

Every key gets its type (from the annotation), its default (from the field, or from the default instance of
the section that holds it: the image model's predictor defaults differ from the audio one's), the range or
choices the loader checks (the field's metadata: choices, min, above, below, max, path) and its comment: the
`# ...` on the field's line, or the comment lines directly above it, read from the class source. A nested
dataclass is a section of dotted keys (model.encoder.dim) and its docstring describes it.

Sections: the shared ones (seqcpc.config.COMMON), then model, data and probe for each registered modality,
then the objective section of each objective on each modality it supports (an objective registry with
names(), get(name) -> entry with .name, .summary, .config, supports(entry, modality) and
section_class(entry, modality)).
"""
import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing

from seqcpc_markdown import cell, code
from seqcpc.eval.report import markdown_table
from seqcpc.fields import BOUNDS

COLUMNS = ["key", "type", "default", "allowed", "what it is"]


def field_comments(cls) -> dict:
    """Field name -> its comment, for the fields that the body of `cls` itself declares ({} without source)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # a class made at run time (dataclasses.make_dataclass) has no source
        return {}
    lines = source.splitlines()
    comments = {t.start[0]: t.string.lstrip("#").strip()
                for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT}

    def own_line(n):  # a comment alone on its line, not after code
        return n in comments and lines[n - 1].lstrip().startswith("#")

    found = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above, n = [], node.lineno - 1
        while own_line(n):
            above.insert(0, comments[n])
            n -= 1
        trailing = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        found[node.target.id] = " ".join(above + trailing)
    return found


def class_doc(cls) -> str:
    """The docstring written in the class body ('' for none: a dataclass's generated __doc__ is its signature)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return ""
    return " ".join((ast.get_docstring(tree.body[0]) or "").split())


def comments_of(cls) -> dict:
    """Field name -> comment, the class's own fields over those it inherits."""
    found = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            found.update(field_comments(base))
    return found


def type_name(tp) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if tp is dict or typing.get_origin(tp) is dict:
        return "mapping"
    if tp is typing.Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


def value_text(value) -> str:
    """A default as it would be written in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value) if len(repr(value)) <= 8 else format(value, ".6g")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(value_text, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and value in ("", "null", "true", "false"):
        return f'"{value}"'
    return str(value)


def allowed_text(meta, tp) -> str:
    parts = []
    if meta.get("choices"):
        parts.append("one of " + ", ".join(code(c) for c in meta["choices"]))
    for key, sign, _ in BOUNDS:
        if meta.get(key) is not None:
            parts.append(f"{sign} {value_text(meta[key])}")
    if parts and typing.get_origin(tp) is list:
        parts[-1] += " (each item)"
    if meta.get("path"):
        parts.append("a path (`~`, `$VARS` expanded)")
    return cell(" and ".join(parts))


def default_of(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def rows(cls, prefix: str, defaults=None) -> list:
    """Table rows of dataclass `cls`, keys under `prefix`; `defaults` is the instance whose values are the
    defaults (None: the fields' own defaults). A nested dataclass gets a row of its own, then its keys."""
    hints, comments, out = typing.get_type_hints(cls), comments_of(cls), []
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}"
        value = default_of(f) if defaults is None else getattr(defaults, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            what = comments.get(f.name) or class_doc(hints[f.name])
            out.append([code(key), "section", "", "", cell(what)])
            out += rows(hints[f.name], key, value)
            continue
        default = "required" if value is dataclasses.MISSING else code(value_text(value))
        out.append([code(key), type_name(hints[f.name]), default, allowed_text(f.metadata, hints[f.name]),
                    cell(comments.get(f.name, ""))])
    return out


def section(heading: str, cls, prefix: str, level: int = 3) -> str:
    """A heading, the class docstring and the table of its keys."""
    doc = class_doc(cls)
    return "\n\n".join(p for p in ("#" * level + " " + heading, cell(doc) if doc else "",
                                   markdown_table(COLUMNS, rows(cls, prefix))) if p)


def common_reference(common: dict) -> list:
    return ["## Sections every config has"] + [section(f"`{name}`", cls, name) for name, cls in common.items()]


def modality_reference(name: str, entry) -> list:
    sizes = ", ".join(code(s) for s in entry.sizes) or "none"
    parts = [f"## The {name} modality", f"`model.modality: {name}`. Named sizes (`model.size`): {sizes}."]
    for part, cls in (("model", entry.model_config), ("data", entry.data_config), ("probe", entry.probe_config)):
        parts.append(section(f"{name}: `{part}`", cls, part))
    return parts


def objective_reference(registry, modality_entries: dict) -> list:
    """For each objective, its section on the modalities it supports; modalities whose tables are the same
    share one."""
    parts = ["## The objective section",
             "`objective.name` chooses the objective; the other keys of `objective:` depend on it, and on the "
             "modality where the objective adds the modality's options (such as its views)."]
    for name in registry.names():
        entry = registry.get(name)
        tables = {}  # table -> modalities it documents
        for modality, m_entry in modality_entries.items():
            if registry.supports(entry, m_entry):
                table = markdown_table(COLUMNS, rows(registry.section_class(entry, m_entry), "objective"))
                tables.setdefault(table, []).append(modality)
        parts += [f"### `objective.name: {name}`", cell(entry.summary)]
        for table, modalities in tables.items():
            parts += [f"On {' and '.join(modalities)}:", table]
    return parts


def config_reference(common: dict, modality_entries: dict, objective_registry) -> str:
    """The whole reference as Markdown."""
    parts = common_reference(common)
    for name, entry in modality_entries.items():
        parts += modality_reference(name, entry)
    parts += objective_reference(objective_registry, modality_entries)
    return "\n\n".join(parts) + "\n"

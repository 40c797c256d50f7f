"""One evaluation loop for every modality. A probe is a small function of a ProbeContext (the config, the
modality's data, the output folder, the log) that returns its rows: a nested dict merged into the run's results.
A modality lists its probes and a report; run_probes runs them in order and writes one report.

    def loudness_probe(ctx) -> dict:
        return {"results": {name: {"loudness": score(fn)} for name, fn in ctx.data.extractors.items()}}

    SPEECH_PROBES = [speaker_probe, ..., loudness_probe]  # adding a probe: one function, one line

What several probes read (features, a fitted probe) is a @shared function of the context: computed once a run.
"""
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from seqcpc.eval.report import write_report


@dataclass
class ProbeContext:
    cfg: Any  # the run's Config
    data: Any  # what the modality's probes read: its splits, labels, feature sets
    out_dir: Path
    log: Callable = print
    shared: dict = field(default_factory=dict)  # (function, args) -> value of the @shared functions


def shared(compute: Callable) -> Callable:
    """compute(ctx, *args) runs once per context and arguments; the probes that call it again get the same value."""

    @functools.wraps(compute)
    def once(ctx: ProbeContext, *args):
        key = (compute, *args)
        if key not in ctx.shared:
            ctx.shared[key] = compute(ctx, *args)
        return ctx.shared[key]

    return once


class Report(NamedTuple):
    """What a modality makes of the merged results: results.md's title, facts and table, and its plots."""
    title: str
    facts: str
    table: str
    plots: dict  # file name -> draw(path)


def merge(results: dict, rows: dict) -> dict:
    """Merge a probe's rows into the results: nested dicts key by key (new keys last), other values replaced."""
    for key, value in rows.items():
        if isinstance(value, dict) and isinstance(results.get(key), dict):
            merge(results[key], value)
        else:
            results[key] = value
    return results


def run_probes(probes: list[Callable], ctx: ProbeContext, report: Callable[[dict], Report]) -> dict:
    """Run each probe(ctx) in order, merge the rows they return into one results dict, and write it to ctx.out_dir
    as results.json, with results.md and the plots of report(results); return the results."""
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for i, probe in enumerate(probes, 1):
        ctx.log(f"[probe {i}/{len(probes)}] {probe.__name__}")
        merge(results, probe(ctx))
    page = report(results)
    write_report(ctx.out_dir, page.title, page.facts, page.table, results, ctx.log)
    for name, draw in page.plots.items():
        draw(ctx.out_dir / name)
    return results

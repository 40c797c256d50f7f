"""The shared evaluation loop: probes run in order, each with a progress line; their rows merge into one results
dict; what several of them read is computed once; one report (results.md, results.json, plots) is written."""
import json
from types import SimpleNamespace

from seqcpc.eval.run import ProbeContext, Report, merge, run_probes, shared


def test_rows_merge_key_by_key_with_new_keys_last():
    results = {"results": {"a": {"x": 1}}, "main": "cpc"}
    merge(results, {"results": {"a": {"y": 2}, "b": {"x": 3}}, "main": "simclr", "counts": {"n": 4}})
    assert results == {"results": {"a": {"x": 1, "y": 2}, "b": {"x": 3}}, "main": "simclr", "counts": {"n": 4}}
    assert list(results) == ["results", "main", "counts"] and list(results["results"]["a"]) == ["x", "y"]


def test_probes_run_in_order_share_what_they_compute_and_write_one_report(tmp_path):
    computed = []

    @shared
    def features(ctx, name):
        computed.append(name)
        return ctx.data * len(name)

    def width_probe(ctx):
        return {"results": {name: {"width": features(ctx, name)} for name in ("ab", "abc")}}

    def double_probe(ctx):
        return {"results": {name: {"double": 2 * features(ctx, name)} for name in ("ab", "abc")}}

    def report(results):
        table = "\n".join(f"{name}: {row}" for name, row in results["results"].items())
        return Report("Toy probes", "two rows", table, {"plot.txt": lambda path: path.write_text("drawn")})

    logs = []
    out = tmp_path / "out"
    results = run_probes([width_probe, double_probe], ProbeContext(SimpleNamespace(), 10, out, logs.append), report)
    assert results == {"results": {"ab": {"width": 20, "double": 40}, "abc": {"width": 30, "double": 60}}}
    assert computed == ["ab", "abc"]  # once each, though both probes read them
    assert logs[:2] == ["[probe 1/2] width_probe", "[probe 2/2] double_probe"]
    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "results.md").read_text() == ("# Toy probes\n\ntwo rows\n\nab: {'width': 20, 'double': 40}\n"
                                                "abc: {'width': 30, 'double': 60}\n")
    assert (out / "plot.txt").read_text() == "drawn"


def test_shared_values_belong_to_one_run():
    @shared
    def fresh(ctx):
        return object()

    first, second = ProbeContext(None, None, None), ProbeContext(None, None, None)
    assert fresh(first) is fresh(first) and fresh(first) is not fresh(second)

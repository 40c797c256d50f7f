"""The learning curves' rows and plots (seqcpc/eval/curves.py) on two hand-made runs."""
import seqcpc.eval.curves as curves


def points():
    trained = {"cpc": {"speaker": 0.5, "abx_within": 0.2}}
    later = {"cpc": {"speaker": 0.7, "abx_within": 0.1}}
    baselines = {"mfcc13": {"speaker": 0.6, "abx_within": 0.15}}
    return {"default": [{"step": 10, "train_s": 60, "probe_s": 6, "results": {**trained, **baselines},
                         "baselines": ["mfcc13"]},
                        {"step": 20, "train_s": 120, "probe_s": 6, "results": later, "baselines": []}],
            "modern": [{"step": 10, "train_s": 90, "probe_s": 6, "results": trained, "baselines": []}]}


def test_rows_give_each_trained_point_once_and_each_baseline_once():
    rows = curves.curve_rows(points())
    trained = [(r["run"], r["step"], r["train_min"]) for r in rows if r["features"] == "cpc"]
    assert trained == [("default", 10, 1.0), ("default", 20, 2.0), ("modern", 10, 1.5)]
    assert [r["features"] for r in rows if r["step"] is None] == ["mfcc13"]
    assert "| modern | cpc | 10 |" in curves.curves_markdown(rows, "base.yaml", [], {"default": [], "modern": ["x=1"]})


def test_each_plot_has_steps_and_minutes_on_its_axes_one_line_per_run_and_the_baselines(tmp_path, monkeypatch):
    figures = {}
    monkeypatch.setattr(curves, "save_figure", lambda fig, path: figures.setdefault(path.name, fig))
    paths = curves.plot_curves(curves.curve_rows(points()), tmp_path)
    assert sorted(p.name for p in paths) == ["curve_abx_within.png", "curve_speaker.png"]
    left, right = figures["curve_speaker.png"].axes
    assert (left.get_xlabel(), right.get_xlabel()) == ("training steps", "training minutes")
    assert [line.get_label() for line in right.get_lines()] == ["default", "modern", "mfcc13"]
    assert list(right.get_lines()[0].get_xdata()) == [1.0, 2.0]  # minutes

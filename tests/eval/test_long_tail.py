import numpy as np
import pytest

from seqcpc.eval.long_tail import (class_groups, group_report, group_table, per_class_accuracy, plot_per_class,
                                   summarise_draws)

COUNTS = [5, 500, 50, 1000, 20, 200, 10, 100, 2, 200]  # pretraining images per class index


def test_per_class_accuracy():
    acc = per_class_accuracy([0, 0, 1, 1, 1, 3], [0, 1, 1, 1, 0, 2], 4)
    np.testing.assert_allclose(acc, [0.5, 2 / 3, np.nan, 0.0])
    with pytest.raises(ValueError, match="y_pred"):
        per_class_accuracy([0, 1], [0, 4], 4)


def test_groups_are_cut_by_count_largest_first():
    groups = class_groups(COUNTS)
    assert list(groups) == ["many", "medium", "few"]
    assert groups["many"].tolist() == [3, 1, 5, 9]  # the two 200s by class index
    assert groups["medium"].tolist() == [7, 2, 4] and groups["few"].tolist() == [6, 0, 8]
    assert [len(g) for g in class_groups(COUNTS, parts=2).values()] == [5, 5]
    with pytest.raises(ValueError, match="parts"):
        class_groups(COUNTS, parts=4)


def predictions(right_of_class: dict[int, float], per_class: int = 10):
    """Test items, per_class of each class; class c gets the first round(right * per_class) right."""
    y_true = np.repeat(np.arange(10), per_class)
    y_pred = y_true.copy()
    for c, right in right_of_class.items():
        wrong = np.flatnonzero(y_true == c)[round(right * per_class):]
        y_pred[wrong] = (c + 1) % 10
    return y_true, y_pred


def test_group_report_perfect_on_many_zero_on_few():
    y_true, y_pred = predictions({7: 0.5, 2: 0.5, 4: 0.5, 6: 0.0, 0: 0.0, 8: 0.0})
    report = group_report(y_true, y_pred, COUNTS)
    assert report["many"] == 1.0 and report["medium"] == 0.5 and report["few"] == 0.0
    assert report["acc"] == pytest.approx(0.55)
    assert report["balancedness"] == pytest.approx(np.sqrt(1 / 6))  # std of (1, .5, 0), ddof=0
    assert report["per_class"][3] == 1.0 and report["per_class"][8] == 0.0 and len(report["per_class"]) == 10


def test_a_class_absent_from_the_test_items_is_none():
    y_true, y_pred = predictions({})
    keep = y_true != 8
    report = group_report(y_true[keep], y_pred[keep], COUNTS)
    assert report["per_class"][8] is None and report["few"] == 1.0 and report["balancedness"] == 0.0


def test_summarise_draws():
    reports = [{"acc": a, "many": a, "medium": a, "few": a - 0.2, "balancedness": 0.1} for a in (0.6, 0.7, 0.8)]
    summary = summarise_draws(reports)
    assert summary["draws"] == 3
    assert summary["acc"]["mean"] == pytest.approx(0.7) and summary["acc"]["std"] == pytest.approx(0.1)  # ddof=1
    assert summary["few"]["mean"] == pytest.approx(0.5) and summary["balancedness"]["std"] == pytest.approx(0)
    single = summarise_draws(reports[:1])
    assert single["acc"] == {"mean": 0.6, "std": None}


def test_group_table():
    y_true, y_pred = predictions({6: 0.0, 0: 0.0, 8: 0.0})
    report = group_report(y_true, y_pred, COUNTS)
    summary = summarise_draws([report, report])
    table = group_table({"cpc": report, "cpc (2 draws)": summary}).splitlines()
    assert table[0].startswith("| method | acc % | many % | medium % | few %")
    assert table[2] == "| cpc | 70.0 | 100.0 | 100.0 | 0.0 | 47.1 |"
    assert table[3] == "| cpc (2 draws) | 70.0 ± 0.0 | 100.0 ± 0.0 | 100.0 ± 0.0 | 0.0 ± 0.0 | 47.1 ± 0.0 |"


def test_plot_per_class_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    curves = {"cpc": list(zip(COUNTS, rng.random(10))), "cpc balanced": [(c, None if c == 2 else 0.5) for c in COUNTS]}
    plot_per_class(curves, tmp_path / "per_class.png", title="long tail")
    data = (tmp_path / "per_class.png").read_bytes()
    assert len(data) > 1000 and data.startswith(b"\x89PNG")

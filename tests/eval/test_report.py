import numpy as np
import pytest
import torch

from seqcpc.eval.report import confusion_matrix, markdown_table, plot_accuracy_bars, plot_confusion


def test_markdown_table():
    assert markdown_table(["a", "b"], [[1, "x"], [2.5, "y"]]) == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | y |"


def test_confusion_matrix():
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 2, 0, 2])
    m = confusion_matrix(y_true, torch.as_tensor(y_pred), 4)
    assert m.shape == (4, 4) and m.sum() == len(y_true)
    assert np.diag(m).sum() == (y_true == y_pred).sum()
    np.testing.assert_array_equal(m[:3, :3], [[1, 1, 0], [0, 2, 1], [1, 0, 3]])  # rows are the true class
    assert not m[3].any() and not m[:, 3].any()
    with pytest.raises(ValueError, match="y_pred"):
        confusion_matrix(y_true, y_pred + 2, 4)


def is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(b"\x89PNG")


def test_plots_write_png(tmp_path):
    rng = np.random.default_rng(7)
    small = confusion_matrix(rng.integers(0, 5, 200), rng.integers(0, 5, 200), 5)
    plot_confusion(small, tmp_path / "small.png", labels=list("abcde"), title="5 classes")
    big = confusion_matrix(rng.integers(0, 100, 5000), rng.integers(0, 100, 5000), 100)
    big[7] = 0  # a class that never occurs must not produce NaNs
    plot_confusion(big, tmp_path / "big.png", title="100 classes")
    plot_accuracy_bars({"speaker": {"cpc": 0.97, "mfcc": 0.8, "random": 0.3},
                        "phone": {"cpc": 0.64, "mfcc": 0.45}}, tmp_path / "bars.png", title="probes")
    for name in ("small.png", "big.png", "bars.png"):
        assert is_png(tmp_path / name)

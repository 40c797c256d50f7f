import math

import pytest
import torch

from seqcpc.errors import DataError
from seqcpc.eval.abx import Item, abx_errors, frame_span, read_items, token_features
from seqcpc.eval.dtw import angular_distances, dtw_costs, dtw_distances

E = torch.eye(4)  # axis vectors: angular distances 0 (same), 0.5 (orthogonal), 1 (opposite), all exact


def plain_dtw(a, b):
    """One pair, cell by cell: the reference for the batched DTW."""
    d = angular_distances(a[None], b[None])[0].tolist()
    cost = [[math.inf] * (len(b) + 1) for _ in range(len(a) + 1)]
    steps = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    cost[0][0] = 0.0
    for i in range(len(a)):
        for j in range(len(b)):
            before = [(cost[i][j], steps[i][j]), (cost[i][j + 1], steps[i][j + 1]), (cost[i + 1][j], steps[i + 1][j])]
            c, s = min(before, key=lambda option: option[0])  # the first of equal minima: diagonal, down, right
            cost[i + 1][j + 1], steps[i + 1][j + 1] = d[i][j] + c, s + 1
    return cost[-1][-1] / steps[-1][-1]


def test_angular_distance_is_the_angle_over_pi():
    a = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])
    b = torch.tensor([[[3.0, 0.0], [-1.0, 0.0]]])
    expected = torch.tensor([[[0.0, 1.0], [0.5, 0.5], [0.25, 0.75]]])
    assert torch.allclose(angular_distances(a, b), expected, atol=1e-6)


def test_dtw_on_a_hand_computed_example():
    # cheapest path (0,0) (1,1) (1,2): cost 0 + 0.5 + 0 over 3 cells; unnormalised it would be 0.5
    dist = torch.tensor([[[0.0, 1.0, 1.0], [1.0, 0.5, 0.0]]])
    assert dtw_costs(dist, torch.tensor([2]), torch.tensor([3])).item() == pytest.approx(0.5 / 3)
    # three equally cheap ways into (1,1): the diagonal is taken, a path of 2 cells, not 3
    dist = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert dtw_costs(dist, torch.tensor([2]), torch.tensor([2])).item() == pytest.approx(2 / 2)
    # from vectors: frame distances [[0, 0.25, 0.5], [0.5, 0.25, 0]], path (0,0) (1,1) (1,2)
    a = torch.stack([E[0], E[1]])
    b = torch.stack([E[0], (E[0] + E[1]) / 2, E[1]])
    assert dtw_distances([a], [b]).item() == pytest.approx(0.25 / 3, abs=1e-6)


def test_padding_does_not_change_a_pair():
    dist = torch.tensor([[[0.0, 1.0, 1.0], [1.0, 0.5, 0.0]]])
    padded = torch.nn.functional.pad(dist, (0, 2, 0, 3), value=-7.0)  # junk in the padding
    assert dtw_costs(padded, torch.tensor([2]), torch.tensor([3])).item() == pytest.approx(0.5 / 3)


def test_batched_dtw_equals_a_plain_loop_over_pairs():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 10, (60, 2), generator=g).tolist()
    a = [torch.randn(la, 4, generator=g) for la, _ in lengths]
    b = [torch.randn(lb, 4, generator=g) for _, lb in lengths]
    batched = dtw_distances(a, b, max_floats=3000)  # a small budget: many batches of mixed lengths
    expected = torch.tensor([plain_dtw(x, y) for x, y in zip(a, b)])
    assert torch.allclose(batched, expected, atol=1e-5)
    assert torch.allclose(dtw_distances(b, a), batched, atol=1e-5)  # symmetric


def item(uid, phone, prev, speaker):
    return Item(uid, 0.0, 0.01, phone, prev, "n", speaker)


# (item, its one-frame feature). Within: s1 in context p: X=A1 (or A2, A5) is 0 from the other a tokens and 0.5
# from B1: 6 triplets right; s1 in context q: X=A3 is 0.5 from A4 and 0 from B2 (wrong), X=A4 0.5 from both
# (tie): 1/4; s2 in context p: 2 triplets right. (a, b) = mean over speakers of the mean over contexts:
# ((1 + 1/4) / 2 + 1) / 2 = 13/16 (not 3/4 over contexts, nor 17/20 over triplets); (b, a) has no triplet.
# Across in context p: (a, b) is always right; (b, a) with A, B from s1 and X=D1: 0.5 < 1, right; with A, B
# from s2 and X=B1: 0.5 = 0.5, a tie. (b, a) = mean over speaker pairs (1 + 1/2) / 2, then over phone pairs.
HAND = [(item("A1", "a", "p", "s1"), E[0]), (item("A2", "a", "p", "s1"), E[0]), (item("A5", "a", "p", "s1"), E[0]),
        (item("B1", "b", "p", "s1"), E[1]), (item("A3", "a", "q", "s1"), E[0]), (item("A4", "a", "q", "s1"), E[1]),
        (item("B2", "b", "q", "s1"), E[0]), (item("C1", "a", "p", "s2"), E[0]), (item("C2", "a", "p", "s2"), E[0]),
        (item("D1", "b", "p", "s2"), -E[0])]


def test_hand_computed_errors_and_ties_count_half():
    items, feats = [i for i, _ in HAND], [f[None] for _, f in HAND]
    assert abx_errors(feats, items, "within", max_per_group=0, max_x_speakers=0) == pytest.approx(1 - 13 / 16)
    assert abx_errors(feats, items, "across", max_per_group=0, max_x_speakers=0) == pytest.approx(1 - 7 / 8)


def toy_items(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    draw = torch.randint(0, 3, (n, 4), generator=g).tolist()
    return [Item(f"f{k}", 0.0, 0.1, "abc"[p], "xy"[c % 2], "z", f"s{s}") for k, (p, c, s, _) in enumerate(draw)]


def test_separating_features_score_0_and_identical_ones_one_half():
    items = toy_items()
    lengths = [3 + k % 4 for k in range(len(items))]
    separating = [E["abc".index(it.phone)].repeat(t, 1) for it, t in zip(items, lengths)]
    identical = [E[3].repeat(t, 1) for t in lengths]
    for mode in ("within", "across"):
        assert abx_errors(separating, items, mode) == 0.0
        assert abx_errors(identical, items, mode) == 0.5


def test_caps_bound_the_work_and_are_seeded():
    items = toy_items(200)
    feats = [torch.randn(4, 3, generator=torch.Generator().manual_seed(k)) for k in range(len(items))]
    capped = abx_errors(feats, items, "across", max_per_group=2, max_x_speakers=1, seed=3)
    assert capped == abx_errors(feats, items, "across", max_per_group=2, max_x_speakers=1, seed=3)
    assert 0.0 < capped < 1.0


def test_no_triplet_is_a_clear_error():
    items = [item("A1", "a", "p", "s1"), item("B1", "b", "q", "s1")]
    with pytest.raises(DataError, match="no triplet"):
        abx_errors([E[:1], E[1:2]], items, "within")


def test_frame_span_takes_the_frames_whose_centres_fall_inside():
    assert frame_span(0.08, 0.14, 100, 50) == slice(8, 14)  # centres 0.085 .. 0.135
    assert frame_span(0.101, 0.104, 100, 50) == slice(10, 11)  # shorter than a frame: the nearest one
    assert frame_span(0.45, 0.62, 100, 50) == slice(45, 50)  # past the end: what there is
    assert frame_span(0.08, 0.16, 50, 50) == slice(4, 8)  # centres 0.09 .. 0.15 at 50 Hz


def test_token_features_load_each_file_once_and_take_each_items_frames():
    items = [Item("f1", 0.02, 0.05, "a", "x", "y", "s"), Item("f2", 0.0, 0.01, "b", "x", "y", "s"),
             Item("f1", 0.05, 0.06, "b", "x", "y", "s")]
    loads = []

    def load(uid):
        loads.append(uid)
        return torch.zeros(1, 1600 if uid == "f1" else 800)

    def frame_index(waves):  # (1, L) -> (1, T, 1): each frame's index
        return torch.arange(waves.shape[1] // 160, dtype=torch.float32)[None, :, None]

    feats = token_features({"idx": frame_index}, load, items)["idx"]
    assert loads == ["f1", "f2"]
    assert [f[:, 0].tolist() for f in feats] == [[2, 3, 4], [0], [5]]


def test_a_bad_item_file_is_a_clear_error(tmp_path):
    (tmp_path / "y.item").write_text("u 0.1 0.2 a b c\n")
    with pytest.raises(DataError, match="y.item:1: expected 7"):
        read_items(tmp_path / "y.item")
    (tmp_path / "z.item").write_text("u 0.2 0.1 a b c s\n")
    with pytest.raises(DataError, match="not a time span"):
        read_items(tmp_path / "z.item")
    with pytest.raises(DataError, match="does not exist"):
        read_items(tmp_path / "none.item")

"""Episodes: the sampler the loop reads and the episodes evaluations draw."""
import numpy as np
import pytest
import torch

from seqcpc.errors import DataError
from seqcpc.fewshot.episodes import EpisodeSampler, draw_episodes, split_episode


def labels_of(counts):
    return np.repeat(np.arange(len(counts)), counts)


def test_sampler_yields_n_way_classes_with_disjoint_support_and_query():
    labels = labels_of([30] * 12)
    sampler = EpisodeSampler(labels, n_way=5, k_shot=2, n_query=3, episodes=20, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 20
    for batch in batches:
        assert len(batch) == 5 * (2 + 3) and len(set(batch)) == len(batch)  # no item twice: disjoint S and Q
        per_class = np.asarray(batch).reshape(5, 5)  # class-major: (N, K + Q)
        classes = labels[per_class]
        assert (classes == classes[:, :1]).all() and len(set(classes[:, 0])) == 5


def test_split_episode_gives_exactly_n_k_support_and_n_q_queries_with_their_labels():
    x = torch.arange(4 * 6).float()[:, None]  # 4 ways, K = 2, Q = 4, laid out class-major
    support, y_s, query, y_q = split_episode(x, n_way=4, k_shot=2)
    assert support.shape == (8, 1) and query.shape == (16, 1)
    assert y_s.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and y_q.tolist() == [c for c in range(4) for _ in range(4)]
    assert support[:, 0].tolist() == [0, 1, 6, 7, 12, 13, 18, 19]


def test_resumed_sampler_skips_exactly_the_episodes_done_and_validation_repeats():
    labels = labels_of([10] * 8)
    full = list(EpisodeSampler(labels, 3, 1, 2, episodes=6, seed=4))
    resumed = EpisodeSampler(labels, 3, 1, 2, episodes=6, seed=4)
    resumed.set_position(0, 4)
    assert list(resumed) == full[4:]
    val = EpisodeSampler(labels, 3, 1, 2, episodes=6, seed=4, train=False)
    first = list(val)
    val.set_position(3)
    assert list(val) == first  # validation draws the same episodes every time
    later = EpisodeSampler(labels, 3, 1, 2, episodes=6, seed=4)
    later.set_position(1)
    assert list(later) != full  # a new epoch, new episodes


def test_small_classes_are_left_out_with_a_message_never_a_crash():
    labels = labels_of([10, 10, 3, 10, 2])
    messages = []
    episodes = draw_episodes(labels, n_way=3, k_shot=2, n_query=2, episodes=30, log=messages.append)
    assert set(labels[episodes.reshape(-1)]) == {0, 1, 3}
    assert "2 of 5 classes have fewer than 4 items" in messages[0]


def test_more_ways_than_classes_is_refused_with_the_numbers():
    with pytest.raises(DataError, match="20-way episodes .* need 20 classes .* only 7 of the 8 classes"):
        draw_episodes(labels_of([10] * 7 + [1]), n_way=20, k_shot=1, n_query=5, episodes=1, log=lambda m: None)


def test_the_loop_samples_only_training_classes_and_evaluation_only_test_classes(tmp_path):
    from image_fixtures import toy_class_store
    from seqcpc.config import load_config
    from seqcpc.fewshot.evaluate import episode_sets
    from seqcpc.image.modality import IMAGE
    from seqcpc.objectives import registry

    root = toy_class_store(tmp_path / "store")
    cfg = load_config(None, ["model.size=image_small", "objective.name=protonet", "objective.n_query=3",
                             f"data.images={root}",
                             "probe.ways=[5]", "probe.shots=[1]", "probe.n_query=3", "probe.episodes=10"])
    train, val = IMAGE.datasets(cfg.data, 0)
    sampler = registry.get("protonet").batch_sampler(train, cfg, 1, 0, 0, True, IMAGE)
    seen = {int(train.labels[i]) for batch in sampler for i in batch}
    assert seen <= set(range(12)) and len(seen) > 5
    data = IMAGE.episode_data(cfg, log=lambda m: None)
    (_, _, episodes), = episode_sets(data, cfg.probe, 0).values()
    assert set(data.labels[episodes.reshape(-1)]) <= set(range(12, 20))


def test_evaluation_leaves_small_classes_out_with_one_message_per_shot_count():
    from seqcpc.config import FewShotConfig
    from seqcpc.fewshot.evaluate import EpisodeData, episode_sets

    labels = labels_of([8] * 6 + [4])  # class 6 has room for 1 + 3 but not 5 + 3
    data = EpisodeData(torch.zeros(len(labels), 1), labels, torch.zeros(1, 1), "images")
    messages = []
    sets = episode_sets(data, FewShotConfig(ways=[2, 3], shots=[1, 5], n_query=3, episodes=50), 0, messages.append)
    assert set(sets) == {"2way_1shot", "2way_5shot", "3way_1shot", "3way_5shot"}
    assert messages == ["episodic evaluation: episodes: 1 of 7 classes have fewer than 8 images (the shots plus the "
                        "queries) and are left out, e.g. class 6 with 4"]
    assert 6 in labels[sets["3way_1shot"][2].reshape(-1)] and 6 not in labels[sets["3way_5shot"][2].reshape(-1)]

import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seqcpc.image.store import (ImageDataset, images_file, images_to_float, labels_file, load_split, read_info,
                                write_dataset, write_info, write_split)
from seqcpc.errors import DataError


def tiny_store(root, n_train=6, n_test=3, h=4, w=5, c=3, classes=("a", "b", "c")):
    rng = np.random.default_rng(0)
    splits = {s: (rng.integers(0, 256, (n, h, w, c), dtype=np.uint8), np.arange(n, dtype=np.int64) % len(classes))
              for s, n in (("train", n_train), ("test", n_test))}
    write_dataset(root, splits, list(classes), source="test", key="k")
    return splits


def test_round_trip_and_dataset_items(tmp_path):
    splits = tiny_store(tmp_path)
    info = read_info(tmp_path)
    assert info["splits"] == {"train": 6, "test": 3} and info["size"] == [4, 5] and info["channels"] == 3
    images, labels = load_split(tmp_path, "train")
    assert np.array_equal(images, splits["train"][0]) and np.array_equal(labels, splits["train"][1])
    ds = ImageDataset(tmp_path, "test")
    x, i = ds[2]
    assert x.dtype == torch.float32 and x.shape == (3, 4, 5) and 0 <= x.min() and x.max() <= 1
    assert i == 2 and torch.allclose(x, torch.from_numpy(splits["test"][0][2]).permute(2, 0, 1) / 255)
    assert list(ds.labels) == [0, 1, 2] and ds.classes == ["a", "b", "c"] and ds.size == (4, 5)
    assert ds.images.shape == (3, 4, 5, 3)
    x, group = next(iter(DataLoader(ds, batch_size=3)))
    assert x.shape == (3, 3, 4, 5) and group.dtype == torch.int64 and group.tolist() == [0, 1, 2]


def test_dataset_pickles_without_its_images(tmp_path):
    tiny_store(tmp_path, n_train=200, h=16, w=16)
    ds = ImageDataset(tmp_path, "train")
    blob = pickle.dumps(ds)
    assert len(blob) < 200 * 16 * 16 * 3  # workers reopen the memmap instead of receiving a copy
    clone = pickle.loads(blob)
    assert torch.equal(clone[5][0], ds[5][0])


def test_images_to_float():
    batch = np.array([[[[0], [255]]]], dtype=np.uint8)  # (1, 1, 2, 1)
    x = images_to_float(batch)
    assert x.shape == (1, 1, 1, 2) and x.tolist() == [[[[0.0, 1.0]]]]
    with pytest.raises(ValueError):
        images_to_float(batch.astype(np.float32))


def test_missing_folder_or_info_says_to_run_data_prep(tmp_path):
    with pytest.raises(DataError, match="data_prep"):
        read_info(tmp_path / "nowhere")
    with pytest.raises(DataError, match="dataset.json.*data_prep"):
        read_info(tmp_path)


def test_missing_file_is_named(tmp_path):
    tiny_store(tmp_path)
    os.remove(labels_file(tmp_path, "test"))
    with pytest.raises(DataError, match="test_labels.npy"):
        load_split(tmp_path, "test")


def test_labels_out_of_range_and_count_mismatch_are_refused(tmp_path):
    tiny_store(tmp_path)
    np.save(labels_file(tmp_path, "train"), np.array([0, 1, 2, 3, 0, 1], dtype=np.int64))
    with pytest.raises(DataError, match="outside the 3 classes"):
        load_split(tmp_path, "train")
    np.save(labels_file(tmp_path, "train"), np.zeros(5, dtype=np.int64))
    with pytest.raises(DataError, match="6 images but .* 5 labels"):
        load_split(tmp_path, "train")


def test_shape_disagreeing_with_info_is_refused(tmp_path):
    tiny_store(tmp_path)
    write_info(tmp_path, {**read_info(tmp_path), "channels": 1})
    with pytest.raises(DataError, match="train_images.npy: expected uint8"):
        load_split(tmp_path, "train")


def test_write_split_validates(tmp_path):
    with pytest.raises(DataError, match="uint8"):
        write_split(tmp_path, "train", np.zeros((2, 3, 3, 1), np.float32), np.zeros(2, np.int64))
    with pytest.raises(DataError, match="labels"):
        write_split(tmp_path, "train", np.zeros((2, 3, 3, 1), np.uint8), np.zeros(3, np.int64))
    assert not list(tmp_path.iterdir())


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_are_never_loaded(tmp_path):
    tiny_store(tmp_path)
    marker = tmp_path / "pwned"
    np.save(images_file(tmp_path, "train"), np.array([Exploit(str(marker))], dtype=object), allow_pickle=True)
    for mmap in (True, False):
        with pytest.raises(DataError, match="train_images.npy"):
            load_split(tmp_path, "train", mmap=mmap)
    images_file(tmp_path, "test").write_bytes(pickle.dumps(Exploit(str(marker))))
    with pytest.raises(DataError, match="test_images.npy"):
        load_split(tmp_path, "test", mmap=False)
    assert not marker.exists()

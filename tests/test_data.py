"""Dataset loaders and the one-class protocol: counts, labels, ranges, seeding, errors."""

from __future__ import annotations

import dataclasses
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from study import data
from study.core.config import DataConfig
from study.data import DatasetError, load_dataset, load_images
from study.data._registry import _load_cached

FASHION = data.DEFAULT_DIRS["fashion_mnist"]


def _clear_data_cache() -> None:
    """Forget cached datasets, so a test that counts loader calls starts from none."""
    _load_cached.cache_clear()


def _idx_bytes(array: np.ndarray) -> bytes:
    """An IDX ubyte file: magic 0x0000 08 ndim, big-endian dims, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_tree(folder: Path, rng: np.random.Generator, n_train: int = 40, n_test: int = 30) -> dict:
    """Four gzipped IDX files of random 6x6 images with classes 0..3; returns the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 6, 6)),
        "train_y": np.arange(n_train) % 4,
        "test_x": rng.integers(0, 256, (n_test, 6, 6)),
        "test_y": np.arange(n_test) % 4,
    }
    for key, stem in data.IDX_FILES.items():
        (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx_bytes(arrays[key])))
    return arrays


def _write_images(
    folder: Path, count: int, mode: str, size: tuple[int, int], rng: np.random.Generator
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i:03d}.png")


def _mvtec_tree(root: Path, mode: str) -> None:
    rng = np.random.default_rng(0)
    cat = root / "widget"
    _write_images(cat / "train" / "good", 5, mode, (40, 30), rng)
    _write_images(cat / "test" / "good", 3, mode, (40, 30), rng)
    _write_images(cat / "test" / "crack", 2, mode, (40, 30), rng)
    _write_images(cat / "test" / "hole", 2, mode, (40, 30), rng)
    (cat / "ground_truth" / "crack").mkdir(parents=True)  # MVTec masks folder: not a split


def _check_tensor_contract(d: data.OneClassData) -> None:
    for t in (d.train, d.val, d.test):
        assert t.dtype == torch.float32 and t.ndim == 4
        assert t.shape[1:] == (d.in_channels, d.image_size, d.image_size)
        assert t.min() >= 0.0 and t.max() <= 1.0
    assert d.test_labels.dtype == torch.int64 and len(d.test_labels) == len(d.test)
    assert set(d.test_labels.tolist()) == {0, 1}


def test_fashion_mnist_one_class_protocol() -> None:
    cfg = DataConfig(name="fashion_mnist", normal_classes=(0,))
    d = load_dataset(cfg)
    _check_tensor_contract(d)
    assert (d.in_channels, d.image_size) == (1, 28)
    train_y = data.read_idx(FASHION / "train-labels-idx1-ubyte.gz")
    train_x = data.read_idx(FASHION / "train-images-idx3-ubyte.gz")
    test_y = data.read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    normal = train_x[train_y == 0]
    assert len(normal) == 6000  # Fashion-MNIST: 6000 training images per class
    assert len(d.train) + len(d.val) == len(normal)
    train_idx, val_idx = data.split_normal(len(normal), cfg.val_fraction, None, cfg.split_seed)
    assert not set(train_idx) & set(val_idx)
    assert len(val_idx) == round(0.1 * len(normal))
    # the tensors are exactly the normal images the exposed split selects
    assert torch.equal(d.val, torch.from_numpy(normal[val_idx][:, None] / 255.0).float())
    assert torch.equal(d.train, torch.from_numpy(normal[train_idx][:, None] / 255.0).float())
    assert len(d.test) == 10000 and int((d.test_labels == 0).sum()) == 1000
    assert torch.equal(d.test_labels, torch.from_numpy((test_y != 0).astype(np.int64)))


def test_fashion_mnist_classes_by_name_and_caps() -> None:
    by_name = load_dataset(DataConfig(normal_classes=("Trouser",), train_limit=50, test_limit=400))
    by_id = load_dataset(DataConfig(normal_classes=(1,), train_limit=50, test_limit=400))
    assert torch.equal(by_name.train, by_id.train) and torch.equal(by_name.test, by_id.test)
    assert len(by_name.train) == 50 and len(by_name.val) == 600
    assert len(by_name.test) == 400 and int((by_name.test_labels == 0).sum()) == 40  # 10% normal kept


def test_missing_dataset_dir_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(data.ENV_VAR, str(empty))
    monkeypatch.setitem(data.DEFAULT_DIRS, "fashion_mnist", tmp_path / "not-installed")
    with pytest.raises(DatasetError) as err:
        load_dataset(DataConfig(name="fashion_mnist"))
    message = str(err.value)
    assert "dataset-fashion-mnist" in message and "LAMP_DATA_DIR" in message
    assert str(empty) in message and str(tmp_path / "not-installed") in message
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):  # an explicit path never falls back
        load_dataset(DataConfig(name="fashion_mnist", path=str(empty)))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"definitely not gzip", "not gzip"),
        (gzip.compress(b"\x00\x00\x0d\x03" + bytes(100)), "wrong magic"),
        (gzip.compress(_idx_bytes(np.zeros((40, 6, 6)))[:-7]), "truncated"),
        (gzip.compress(_idx_bytes(np.zeros(40))), "labels instead of images"),
    ],
)
def test_corrupt_idx_file_is_named(tmp_path: Path, payload: bytes, reason: str) -> None:
    _write_idx_tree(tmp_path, np.random.default_rng(0))
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(payload)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz"):
        load_dataset(DataConfig(name="mnist", path=str(tmp_path)))


def test_idx_loader_round_trip(tmp_path: Path) -> None:
    arrays = _write_idx_tree(tmp_path, np.random.default_rng(1))
    d = load_dataset(DataConfig(name="mnist", path=str(tmp_path), normal_classes=(2, 3), val_fraction=0.25))
    normal = arrays["train_x"][np.isin(arrays["train_y"], (2, 3))]
    assert len(d.train) + len(d.val) == len(normal) == 20 and len(d.val) == 5
    train_idx, _ = data.split_normal(20, 0.25, None, 0)
    assert torch.equal(d.train, torch.from_numpy(normal[train_idx][:, None] / 255.0).float())
    assert d.test_labels.tolist() == [int(y not in (2, 3)) for y in arrays["test_y"]]


def test_mvtec_rgb_tree(tmp_path: Path) -> None:
    _mvtec_tree(tmp_path, "RGB")
    d = load_dataset(
        DataConfig(name="mvtec", path=str(tmp_path), category="widget", image_size=16, val_fraction=0.2)
    )
    _check_tensor_contract(d)
    assert (d.in_channels, d.image_size) == (3, 16)
    assert len(d.train) + len(d.val) == 5 and len(d.val) == 1
    assert d.test_labels.tolist() == [1, 1, 0, 0, 0, 1, 1]  # sorted folders: crack, good, hole


def test_mvtec_grey_tree_and_category_errors(tmp_path: Path) -> None:
    _mvtec_tree(tmp_path, "L")
    d = load_dataset(DataConfig(name="mvtec", path=str(tmp_path), category="widget", val_fraction=0.2))
    assert (d.in_channels, d.image_size) == (1, data.MVTEC_DEFAULT_SIZE)
    assert len(d.test) == 7 and int(d.test_labels.sum()) == 4
    with pytest.raises(DatasetError, match="available: widget"):
        load_dataset(DataConfig(name="mvtec", path=str(tmp_path), category="bottle"))
    with pytest.raises(DatasetError, match="needs data.category"):
        load_dataset(DataConfig(name="mvtec", path=str(tmp_path)))


def test_npz_with_classes_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    train_x = rng.integers(0, 256, (30, 10, 10, 3), dtype=np.uint8)  # NHWC
    test_x = rng.integers(0, 256, (12, 10, 10, 3), dtype=np.uint8)
    train_y = np.array(["ok", "scratch", "dent"] * 10)
    test_y = np.array(["ok", "scratch", "dent"] * 4)
    path = tmp_path / "parts.npz"
    np.savez(path, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)
    d = load_dataset(DataConfig(name="npz", path=str(path), normal_classes=("ok",), val_fraction=0.2))
    _check_tensor_contract(d)
    assert (d.in_channels, d.image_size) == (3, 10)
    normal = train_x[train_y == "ok"].transpose(0, 3, 1, 2)
    train_idx, val_idx = data.split_normal(10, 0.2, None, 0)
    assert torch.equal(d.val, torch.from_numpy(normal[val_idx] / 255.0).float())
    assert torch.equal(d.train, torch.from_numpy(normal[train_idx] / 255.0).float())
    assert d.test_labels.tolist() == [int(y != "ok") for y in test_y]


def test_npz_with_anomaly_labels_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    train_x = rng.random((20, 1, 12, 12), dtype=np.float32)  # NCHW floats in [0, 1]
    test_x = rng.random((8, 1, 12, 12), dtype=np.float32)
    labels = np.array([0, 1] * 4)
    path = tmp_path / "user.npz"
    np.savez(path, train_x=train_x, test_x=test_x, test_labels=labels)
    d = load_dataset(DataConfig(name="npz", path=str(path), val_fraction=0.25, image_size=12))
    train_idx, val_idx = data.split_normal(20, 0.25, None, 0)
    assert torch.equal(d.train, torch.from_numpy(train_x[train_idx]))
    assert torch.equal(d.test, torch.from_numpy(test_x)) and d.test_labels.tolist() == labels.tolist()
    resized = load_dataset(DataConfig(name="npz", path=str(path), val_fraction=0.25, image_size=6))
    assert resized.test.shape == (8, 1, 6, 6) and resized.image_size == 6
    np.savez(path, train_x=train_x * 255, test_x=test_x, test_labels=labels)
    _clear_data_cache()
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        load_dataset(DataConfig(name="npz", path=str(path)))


def test_split_seed_controls_the_split() -> None:
    a = load_dataset(DataConfig(name="digits", split_seed=0, test_limit=100))
    b = load_dataset(DataConfig(name="digits", split_seed=0, test_limit=100))
    c = load_dataset(DataConfig(name="digits", split_seed=1, test_limit=100))
    assert torch.equal(a.val, b.val) and torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.val, c.val) and not torch.equal(a.test, c.test)
    t0, v0 = data.split_normal(500, 0.1, None, seed=7)
    t1, v1 = data.split_normal(500, 0.1, None, seed=7)
    assert np.array_equal(t0, t1) and np.array_equal(v0, v1)
    assert not np.array_equal(v0, data.split_normal(500, 0.1, None, seed=8)[1])
    capped, v_capped = data.split_normal(500, 0.1, 30, seed=7)
    assert (
        np.array_equal(v_capped, v0) and set(capped) <= set(t0) and len(capped) == 30
    )  # the cap never moves val


def test_stratified_subset_keeps_proportion() -> None:
    labels = np.array([0] * 100 + [1] * 900)
    idx = data.stratified_subset(labels, 50, seed=0)
    assert len(idx) == 50 and int((labels[idx] == 0).sum()) == 5 and len(set(idx)) == 50
    rare = data.stratified_subset(np.array([0] * 999 + [1]), 10, seed=0)
    assert set(np.array([0] * 999 + [1])[rare]) == {0, 1}  # a rare class keeps one sample


def test_digits_in_unit_range() -> None:
    d = load_dataset(DataConfig(name="digits", normal_classes=(3,)))
    _check_tensor_contract(d)
    assert (d.in_channels, d.image_size) == (1, 8)
    assert float(d.train.max()) == 1.0 and float(d.train.min()) == 0.0  # 16 -> 1, 0 -> 0
    n_normal = len(d.train) + len(d.val)
    assert abs(n_normal - 0.7 * 183) <= 1  # digits has 183 threes; 70 % train, stratified


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"normal_classes": (10,)}, "available: 0, 1"),
        ({"normal_classes": ()}, "normal_classes is empty"),
        ({"val_fraction": 0.0}, r"val_fraction must be in \(0, 1\)"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \(0, 1\)"),
        ({"normal_classes": tuple(range(10))}, "no anomalous samples"),
        ({"name": "cifar"}, "available: digits, fashion_mnist, images, mnist, mvtec, npz"),
        ({"name": "npz"}, "needs data.path"),
    ],
)
def test_bad_settings_raise_clear_errors(change: dict, match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        load_dataset(DataConfig(**{"name": "digits", **change}))


def test_cache_loads_once_and_hands_out_private_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    loader = data.LOADERS["digits"]
    monkeypatch.setitem(data.LOADERS, "digits", lambda cfg: calls.append(cfg) or loader(cfg))
    _clear_data_cache()
    cfg = DataConfig(name="digits", split_seed=5)
    first = load_dataset(cfg)
    first.train.zero_()
    first.test_labels.fill_(7)
    second = load_dataset(cfg)
    assert len(calls) == 1
    assert float(second.train.max()) == 1.0 and set(second.test_labels.tolist()) == {0, 1}
    _clear_data_cache()


def test_load_images_from_folder_npz_idx_and_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    _write_images(tmp_path / "imgs" / "b", 2, "L", (9, 9), rng)
    _write_images(tmp_path / "imgs" / "a", 1, "RGB", (9, 9), rng)
    x, ids = load_images(tmp_path / "imgs")
    assert ids == ["a/000.png", "b/000.png", "b/001.png"] and x.shape == (3, 3, 9, 9)
    expected = np.asarray(Image.open(tmp_path / "imgs" / "b" / "001.png")) / 255.0
    assert torch.allclose(x[2, 0], torch.from_numpy(expected).float())  # grey image repeated into RGB
    grey, _ = load_images(tmp_path / "imgs", image_size=4, channels=1)
    assert grey.shape == (3, 1, 4, 4) and grey.min() >= 0 and grey.max() <= 1

    images = rng.integers(0, 256, (5, 7, 7), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", images=images)
    x, ids = load_images(str(tmp_path / "s.npz"), channels=3)
    assert ids == ["0", "1", "2", "3", "4"] and x.shape == (5, 3, 7, 7)
    assert torch.equal(x[:, 1], torch.from_numpy(images / 255.0).float())

    arrays = _write_idx_tree(tmp_path / "idx", rng)
    x, ids = load_images(tmp_path / "idx" / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(x[:, 0], torch.from_numpy(arrays["test_x"] / 255.0).float()) and len(ids) == 30

    x, ids = load_images("digits")
    assert x.shape == (540, 1, 8, 8) and ids[-1] == "539"
    with pytest.raises(DatasetError, match="dataset name"):
        load_images(tmp_path / "nothing-here")


# ---------------------------------------------------------------- data as people store it
def _arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "train": rng.integers(0, 256, (24, 7, 7), dtype=np.uint8),
        "train_y": np.arange(24) % 3,
        "test": rng.integers(0, 256, (9, 7, 7), dtype=np.uint8),
        "test_y": np.arange(9) % 3,
    }


@pytest.mark.parametrize(
    "names",
    [
        ("x_train", "y_train", "x_test", "y_test"),  # Keras
        ("train_x", "train_y", "test_x", "test_y"),
        ("X_train", "y_train", "X_test", "y_test"),  # scikit-learn style
        ("train_images", "train_labels", "test_images", "test_labels"),
    ],
    ids=lambda n: n[0],
)
def test_npz_key_conventions_with_classes_load(tmp_path: Path, names: tuple[str, ...]) -> None:
    a = _arrays(np.random.default_rng(5))
    path = tmp_path / "d.npz"
    np.savez(path, **dict(zip(names, (a["train"], a["train_y"], a["test"], a["test_y"]), strict=True)))
    d = load_dataset(DataConfig(name="npz", path=str(path), normal_classes=(1,), val_fraction=0.25))
    assert len(d.train) + len(d.val) == 8  # the class-1 training images
    assert d.test_labels.tolist() == [int(y != 1) for y in a["test_y"]]
    assert torch.equal(d.test, torch.from_numpy(a["test"][:, None] / 255.0).float())


@pytest.mark.parametrize(
    "names", [("x_train", "x_test", "y_test"), ("train_x", "test_x", "test_labels")], ids=lambda n: n[0]
)
def test_npz_one_class_layouts_without_train_labels_load(tmp_path: Path, names: tuple[str, ...]) -> None:
    a = _arrays(np.random.default_rng(6))
    labels = (np.arange(9) % 2).reshape(9, 1)  # a column vector, as some tools save labels
    path = tmp_path / "d.npz"
    np.savez(path, **dict(zip(names, (a["train"], a["test"], labels), strict=True)))
    d = load_dataset(DataConfig(name="npz", path=str(path), val_fraction=0.25))
    assert len(d.train) + len(d.val) == 24 and d.test_labels.tolist() == labels[:, 0].tolist()


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x_train": np.zeros((4, 5, 5)), "x_test": np.zeros((4, 5, 5))}, r"no test labels; found: x_test \(4, 5, 5\), x_train"),
        ({"images": np.zeros((4, 5, 5))}, "no train images or test images or test labels; found: images"),
        ({"x_train": np.zeros((4, 5, 5)), "train_x": np.zeros((4, 5, 5))}, "train_x and x_train both name"),
        ({"x_train": np.zeros((4, 5)), "x_test": np.zeros((4, 5, 5)), "y_test": np.zeros(4)}, r"x_train: images of shape \(4, 5\)"),
        ({"x_train": np.zeros((4, 5, 5)), "x_test": np.zeros((3, 5, 5)), "y_test": np.zeros(4)}, r"3 images but y_test has shape \(4,\)"),
        ({"x_train": np.full((4, 5, 5), np.nan), "x_test": np.zeros((4, 5, 5)), "y_test": np.zeros(4)}, "4 images contain NaN"),
        ({"x_train": np.zeros((4, 5, 5)), "x_test": np.zeros((4, 5, 5)), "y_test": np.arange(4)}, "must be 0 .normal. or 1 .anomalous.; found values 0, 1, 2, 3"),
        ({"x_train": np.zeros((4, 5, 5)), "x_test": np.zeros((4, 6, 6)), "y_test": np.zeros(4)}, "x_train images are"),
    ],
    ids=["no-labels", "unknown-keys", "two-names", "wrong-shape", "label-count", "nan", "classes-without-train-labels", "sizes-differ"],
)  # fmt: skip
def test_npz_errors_list_layouts_and_keys_found(tmp_path: Path, arrays: dict, match: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=match) as err:
        load_dataset(DataConfig(name="npz", path=str(path)))
    assert str(path) in str(err.value)
    if "found: " in match:
        assert "x_train, y_train, x_test, y_test" in str(err.value)  # the accepted layouts are named


def test_npz_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope.npz: no such .npz file"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "nope.npz")))


def test_mvtec_mixed_modes_formats_and_nested_defects(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    cat = tmp_path / "widget"
    _write_images(cat / "train" / "good", 4, "L", (12, 12), rng)
    Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(cat / "train" / "good" / "c.jpg")
    Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(cat / "train" / "good" / "d.webp")
    _write_images(cat / "test" / "good", 2, "L", (12, 12), rng)
    Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(cat / "test" / "good" / "e.bmp")
    _write_images(cat / "test" / "crack" / "deep" / "left", 2, "RGB", (12, 12), rng)  # nested defect folders
    Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(cat / "test" / "crack" / "f.tif")
    d = load_dataset(
        DataConfig(name="mvtec", path=str(tmp_path), category="widget", image_size=12, val_fraction=0.2)
    )
    assert d.in_channels == 3  # one colour image makes the whole dataset RGB
    assert len(d.train) + len(d.val) == 6
    assert d.test_labels.tolist() == [1, 1, 1, 0, 0, 0]  # crack (nested + .tif) sorts before good
    grey = np.asarray(Image.open(cat / "test" / "good" / "000.png"), dtype=np.float32) / 255.0
    for c in range(3):  # a grey image is repeated into every channel
        assert torch.allclose(d.test[3, c], torch.from_numpy(grey), atol=1 / 255)
    # data.path may name the category folder itself
    same = load_dataset(DataConfig(name="mvtec", path=str(cat), image_size=12, val_fraction=0.2))
    assert torch.equal(same.test, d.test)


def test_mvtec_corrupt_image_and_missing_train_good_are_named(tmp_path: Path) -> None:
    _mvtec_tree(tmp_path, "L")
    broken = tmp_path / "widget" / "test" / "hole" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DatasetError, match=r"cannot read image .*broken.png"):
        load_dataset(DataConfig(name="mvtec", path=str(tmp_path), category="widget"))
    empty_root = tmp_path / "other"
    (empty_root / "widget" / "test" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"has no <category>/train/good folder \(sub-folders: widget\)"):
        load_dataset(DataConfig(name="mvtec", path=str(empty_root), category="widget"))


def test_unknown_normal_class_names_it_and_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"normal class 'Sock' is not a class of 'digits'; available: 0, 1, 2"
    ):
        load_dataset(DataConfig(name="digits", normal_classes=("Sock",)))


def test_images_loader_takes_a_normal_and_an_anomalous_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    _write_images(tmp_path / "good", 10, "L", (20, 16), rng)
    _write_images(tmp_path / "bad" / "scratch", 2, "RGB", (16, 16), rng)
    _write_images(tmp_path / "bad" / "dent", 2, "L", (16, 16), rng)
    cfg = DataConfig(
        name="images",
        path=str(tmp_path / "good"),
        anomalous_path=str(tmp_path / "bad"),
        image_size=8,
        val_fraction=0.2,
    )
    d = load_dataset(cfg)
    _check_tensor_contract(d)
    assert (d.in_channels, d.image_size) == (3, 8)
    assert d.test_labels.tolist() == [0, 0, 0, 1, 1, 1, 1]  # 30 % of 10 normal images, then the 4 defects
    assert len(d.train) + len(d.val) == 7
    with pytest.raises(DatasetError, match="needs data.anomalous_path"):
        load_dataset(dataclasses.replace(cfg, anomalous_path=None))
    with pytest.raises(DatasetError, match="holds no images"):
        (tmp_path / "empty").mkdir()
        load_dataset(dataclasses.replace(cfg, anomalous_path=str(tmp_path / "empty")))

"""Tests for resattn.data.images and image_transforms: layouts, lazy archives, errors, splits,
augmentation. Generated data lives in tmp_path; the real sets are only read (skipped if absent).
"""

from __future__ import annotations

import io
import multiprocessing
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from resattn.data.archives import ancestors, is_hidden, list_images, member_path
from resattn.data.image_transforms import (
    AugmentedSubset,
    ColorJitter,
    Compose,
    RandomAffine,
    RandomHorizontalFlip,
    RandomRotation,
    affine,
    normalize,
)
from resattn.data.images import JAFFE_CLASSES, ImageDataset
from resattn.data.splits import stratified_split
from resattn.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MEDNIST = SHARED / "mednist" / "MedNIST_shared.tar.gz"
JAFFE = SHARED / "fer" / "jaffe_shared.tar.gz"
FER2013 = SHARED / "fer" / "fer2013_subset_shared.tar.gz"

H, W = 10, 12  # non-square, so that height/width mix-ups fail
# Python sorted() order puts upper case first: "C" < "a" < "b" (as "CXR" < "ChestCT").
CLASSES = ["C", "a", "b"]


def _pattern(k: int, i: int) -> np.ndarray:
    """A distinct (H, W) uint8 image for class k, image i."""
    rng = np.random.default_rng(100 * k + i)
    return rng.integers(0, 256, (H, W), dtype=np.uint8)


def _encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _tree(n_per_class: int = 4, rgb: set[tuple[int, int]] = frozenset()) -> dict[str, bytes]:
    """``{"<class>/<i>.png": png bytes}``; images in ``rgb`` (class, i) are stored as RGB."""
    files = {}
    for k, c in enumerate(CLASSES):
        for i in range(n_per_class):
            img = Image.fromarray(_pattern(k, i))
            if (k, i) in rgb:
                a = _pattern(k, i)
                img = Image.fromarray(np.stack([a, 255 - a, a // 2], axis=-1))
            files[f"{c}/{i:03d}.png"] = _encode(img)
    return files


def _write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _write_archive(
    path: Path, files: dict[str, bytes], prefix: str = "outer/inner/", dirs: tuple[str, ...] = ()
) -> Path:
    """A .zip, .tar or .tar.gz holding ``prefix + name`` (and empty ``dirs`` entries)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for d in dirs:
                zf.writestr(prefix + d + "/", b"")
            for name, data in files.items():
                zf.writestr(prefix + name, data)
        return path
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
        for d in dirs:
            info = tarfile.TarInfo(prefix + d)
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _all(ds) -> torch.Tensor:
    return torch.stack([ds[i][0] for i in range(len(ds))])


# ---------------------------------------------------------------------------------- layouts
def test_folder_layout_shapes_labels_and_sorted_classes(tmp_path: Path) -> None:
    ds = ImageDataset.from_path(_write_folder(tmp_path, _tree()))
    assert ds.class_names == CLASSES
    assert len(ds) == 12 and ds.groups is None
    assert ds.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ds.paths[4] == "a/000.png"
    x, y = ds[5]
    assert x.shape == (1, H, W) and x.dtype == torch.float32 and y == 1
    assert torch.equal(x[0], torch.from_numpy(_pattern(1, 1)).float() / 255)
    assert ds.read(5).shape == (H, W, 1) and ds.read(5).dtype == np.uint8


@pytest.mark.parametrize("name", ["data.tar.gz", "data.tar", "data.zip"])
def test_archives_with_class_folders_at_depth_2_match_folder(tmp_path: Path, name: str) -> None:
    files = _tree()
    ref = ImageDataset.from_path(_write_folder(tmp_path / "folder", files))
    ds = ImageDataset.from_path(_write_archive(tmp_path / name, files))
    assert ds.class_names == CLASSES
    assert ds.paths[0] == "outer/inner/C/000.png"
    assert np.array_equal(ds.labels, ref.labels)
    assert torch.equal(_all(ds), _all(ref))
    clone = pickle.loads(pickle.dumps(ds))  # spawn workers get a pickled copy: no open handle
    assert torch.equal(clone[7][0], ref[7][0])


@pytest.mark.parametrize("name", ["data.tar.gz", "data.tar", "data.zip"])
def test_list_images_indexes_members_and_folders(tmp_path: Path, name: str) -> None:
    files = {**_tree(n_per_class=2), "notes.txt": b"x", ".hidden/x.png": b"not decoded"}
    store, dirs = list_images(_write_archive(tmp_path / name, files, prefix="./r//", dirs=("e",)))
    assert [member_path(n) for n in store.names] == [f"r/{k}" for k in sorted(_tree(2))]
    assert dirs == {"r", "r/C", "r/a", "r/b", "r/e", "r/.hidden"}
    assert store.read_bytes(3) == _tree(2)["a/001.png"]
    assert np.array_equal(np.asarray(store.image(3)), _pattern(1, 1))
    folder, folder_dirs = list_images(_write_folder(tmp_path / "f", files))
    assert folder.names == sorted(_tree(2)) and folder_dirs == {"C", "a", "b"}
    assert list(ancestors("a/b/c.png")) == ["a/b", "a"] and member_path("\\a\\b") == "a/b"
    assert is_hidden("a/.git/x.png") and is_hidden("__MACOSX/a.png") and not is_hidden("a/b.png")
    (tmp_path / "x.bin").write_bytes(b"neither zip nor tar")
    with pytest.raises(DataError, match=r"x\.bin: unsupported file type"):
        list_images(tmp_path / "x.bin")


def test_npz_layouts_and_class_names(tmp_path: Path) -> None:
    imgs = np.stack([_pattern(k, i) for k in range(2) for i in range(3)])  # (6, H, W)
    labels = np.array([1, 1, 1, 0, 0, 0])
    variants = {
        "nhw": imgs,
        "nhwc": np.repeat(imgs[..., None], 3, axis=-1),
        "nchw_float": np.repeat(imgs[:, None], 3, axis=1).astype(np.float32) / 255,
    }
    for key, arr in variants.items():
        path = tmp_path / f"{key}.npz"
        np.savez(path, images=arr, labels=labels, class_names=np.array(["zebra", "ant"]))
        ds = ImageDataset.from_path(path, channels=1)
        assert ds.class_names == ["zebra", "ant"], key  # given order is kept: labels index it
        assert ds.labels.tolist() == labels.tolist()
        assert np.array_equal(ds.read(4)[:, :, 0], imgs[4]), key
    np.savez(tmp_path / "text.npz", images=imgs, labels=np.array(["b", "a"] * 3))
    ds = ImageDataset.from_path(tmp_path / "text.npz")
    assert ds.class_names == ["a", "b"] and ds.labels.tolist() == [1, 0] * 3


def test_channel_conversion_majority_mode_and_resize(tmp_path: Path) -> None:
    # 11 gray + 1 RGB image: majority is gray.
    gray = ImageDataset.from_path(_write_folder(tmp_path / "g", _tree(rgb={(1, 2)})))
    assert gray.channels == 1 and gray[6][0].shape == (1, H, W)
    rgb_img = np.asarray(Image.open(tmp_path / "g" / "a" / "002.png").convert("L"))
    assert np.array_equal(gray.read(6)[:, :, 0], rgb_img)  # RGB image converted to L

    three = ImageDataset.from_path(tmp_path / "g", channels=3)
    x = three[0][0]
    assert x.shape == (3, H, W) and torch.equal(x[0], x[2])

    # Mostly RGB: majority keeps 3 channels; channels=1 forces gray.
    mostly_rgb = {(k, i) for k in range(3) for i in range(4)} - {(0, 0)}
    folder = _write_folder(tmp_path / "c", _tree(rgb=mostly_rgb))
    assert ImageDataset.from_path(folder).channels == 3
    assert ImageDataset.from_path(folder, channels=1)[1][0].shape == (1, H, W)

    assert ImageDataset.from_path(folder, size=8)[0][0].shape == (3, 8, 8)
    assert ImageDataset.from_path(folder, size=(6, 9), channels=1)[0][0].shape == (1, 6, 9)

    (folder / "b" / "wide.png").write_bytes(_encode(Image.new("L", (W + 3, H))))
    with pytest.warns(UserWarning, match="different sizes"):
        ImageDataset.from_path(folder)


def test_jaffe_names_give_labels_subjects_and_gray_palette(tmp_path: Path) -> None:
    palette = [v for g in range(256) for v in (g, g, g)]  # identity gray, as some JAFFE TIFFs
    files = {}
    for s, subject in enumerate(["KL", "YM", "NA"]):
        for e, code in enumerate(["AN", "DI", "FE", "HA", "NE", "SA", "SU"]):
            img = Image.frombytes("P", (W, H), _pattern(s, e).tobytes())
            img.putpalette(palette)
            files[f"{subject}.{code}{e % 3 + 1}.{100 + 7 * s + e}.tiff"] = _encode(img, "TIFF")
    ds = ImageDataset.from_path(_write_archive(tmp_path / "j.tar.gz", files, prefix="jaffe/"))
    assert ds.class_names == list(JAFFE_CLASSES) and len(ds.class_names) == 7
    assert ds.channels == 1
    i = ds.paths.index("jaffe/YM.SA3.112.tiff")  # subject 1, expression 5
    assert JAFFE_CLASSES[ds.labels[i]] == "sadness" and ds.groups[i] == "YM"
    assert np.array_equal(ds.read(i)[:, :, 0], _pattern(1, 5))  # palette indices = gray values
    assert sorted(set(ds.groups)) == ["KL", "NA", "YM"]
    # Forcing the folder layout sees one class folder ("jaffe"): not a classification set.
    with pytest.raises(DataError, match="at least 2 classes"):
        ImageDataset.from_path(tmp_path / "j.tar.gz", layout="folders")


def test_lazy_archives_in_forked_workers_match_main_process(tmp_path: Path) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("fork start method unavailable")
    files = _tree(n_per_class=8)
    aug = Compose([RandomHorizontalFlip(), RandomAffine(10, (0.1, 0.1), (0.9, 1.1))])

    def batches(data, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
        loader = DataLoader(
            data,
            batch_size=2,
            num_workers=workers,
            multiprocessing_context="fork" if workers else None,
        )
        xs, ys = zip(*loader, strict=True)
        return torch.cat(xs), torch.cat(ys)

    for name in ("d.tar", "d.tar.gz", "d.zip"):
        ds = ImageDataset.from_path(_write_archive(tmp_path / name, files))
        ref = torch.stack([torch.from_numpy(_pattern(k, i)) for k in range(3) for i in range(8)])
        # Reading in the parent first opens the archive there: workers inherit that handle, and
        # reading through it concurrently (shared file offset) would mix up members.
        x0, y0 = batches(ds, 0)
        assert torch.equal(x0[:, 0], ref.float() / 255), name
        x2, y2 = batches(ds, 2)
        assert torch.equal(x0, x2) and torch.equal(y0, y2), name
        sub = AugmentedSubset(ds, np.arange(len(ds))[::-1], aug, seed=5)
        xa0, ya0 = batches(sub, 0)
        xa2, ya2 = batches(sub, 2)
        assert torch.equal(xa0, xa2) and torch.equal(ya0, ya2), name
        assert torch.equal(ya0, torch.from_numpy(ds.labels[::-1].copy())), name


# ---------------------------------------------------------------------------------- errors
def test_missing_path_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        ImageDataset.from_path(tmp_path / "nope")
    folder = _write_folder(tmp_path / "f", _tree(n_per_class=1))
    with pytest.raises(ConfigError, match="channels"):
        ImageDataset.from_path(folder, channels=2)
    with pytest.raises(ConfigError, match="size"):
        ImageDataset.from_path(folder, size=0)
    with pytest.raises(ConfigError, match="layout"):
        ImageDataset.from_path(folder, layout="imagenet")


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "f", _tree(n_per_class=2))
    (folder / "empty_class").mkdir()
    with pytest.raises(DataError, match="'empty_class' holds no images"):
        ImageDataset.from_path(folder)
    # In a zip the empty class exists only as a directory entry.
    archive = _write_archive(tmp_path / "z.zip", _tree(n_per_class=2), dirs=("zzz",))
    with pytest.raises(DataError, match="'outer/inner/zzz' holds no images"):
        ImageDataset.from_path(archive)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_jpeg_names_the_file(tmp_path: Path, damage: str) -> None:
    files = _tree(n_per_class=2)
    jpeg = _encode(Image.fromarray(_pattern(0, 0)), "JPEG")
    files["a/bad.jpeg"] = b"not a jpeg at all" if damage == "garbage" else jpeg[: len(jpeg) // 2]
    for path in (_write_folder(tmp_path / "f", files), _write_archive(tmp_path / "t.tgz", files)):
        with pytest.raises(DataError, match=r"bad\.jpeg: cannot decode image"):
            ds = ImageDataset.from_path(path)  # opening decodes a sample, may already fail
            _all(ds)


def test_npz_errors(tmp_path: Path) -> None:
    imgs = np.zeros((4, H, W), np.uint8)
    cases = {
        "missing": ({"images": imgs}, r"missing field\(s\) \['labels'\]"),
        "mismatch": ({"images": imgs, "labels": np.array([0, 1, 0])}, "one label per image"),
        "range": (
            {"images": imgs, "labels": np.array([0, 1, 2, 1]), "class_names": np.array(["x", "y"])},
            "holds 2 at index 2, out of range",
        ),
        "shape": ({"images": np.zeros((4, 5), np.uint8), "labels": np.arange(4)}, "shape"),
    }
    for name, (arrays, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(DataError, match=message):
            ImageDataset.from_path(tmp_path / f"{name}.npz")


def test_no_images_and_single_class(tmp_path: Path) -> None:
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images found"):
        ImageDataset.from_path(tmp_path / "empty")
    one = {k: v for k, v in _tree(n_per_class=2).items() if k.startswith("a/")}
    with pytest.raises(DataError, match="expected at least 2 classes"):
        ImageDataset.from_path(_write_folder(tmp_path / "one", one))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        ImageDataset.from_path(tmp_path / "x.txt")


# ---------------------------------------------------------------------------------- splits
def test_stratified_split_preserves_class_proportions() -> None:
    sizes = [100, 37, 9, 250]
    labels = np.repeat(np.arange(4), sizes)
    np.random.default_rng(0).shuffle(labels)
    fractions = (0.9, 0.06, 0.04)
    parts = stratified_split(labels)  # defaults: 90/6/4, seed 123
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    for part, f in zip(parts, fractions, strict=True):
        counts = np.bincount(labels[part], minlength=4)
        assert np.all(np.abs(counts - f * np.array(sizes)) <= 1), (f, counts)
    again = stratified_split(labels, fractions, seed=123)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = stratified_split(labels, fractions, seed=124)
    assert not np.array_equal(parts[1], other[1])
    with pytest.raises(ConfigError, match="sum to 1"):
        stratified_split(labels, (0.5, 0.2, 0.2))


def test_stratified_split_with_groups_keeps_subjects_apart() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat([f"s{k}" for k in range(12)], 14)
    labels = rng.integers(0, 7, len(groups))
    parts = stratified_split(labels, (0.6, 0.2, 0.2), seed=3, groups=groups)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    subjects = [set(groups[p]) for p in parts]
    assert all(subjects), "every part gets subjects"
    assert not (subjects[0] & subjects[1] or subjects[0] & subjects[2] or subjects[1] & subjects[2])


# ---------------------------------------------------------------------------------- transforms
def test_flip_rotation_and_translation_are_exact() -> None:
    img = torch.arange(2 * 6 * 8, dtype=torch.float32).reshape(2, 6, 8)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(img), img.flip(-1))
    assert RandomHorizontalFlip(p=0.0)(img) is img
    square = img[:, :, :6]
    assert torch.allclose(affine(square, 90), torch.rot90(square, 1, dims=(1, 2)), atol=1e-4)
    shifted = affine(img, translate=(2, 1))  # 2 px right, 1 px down; zeros come in
    assert torch.allclose(shifted[:, 1:, 2:], img[:, :-1, :-2], atol=1e-4)
    assert shifted[:, 0].abs().max() < 1e-4 and shifted[:, :, :2].abs().max() < 1e-4
    assert RandomRotation(0)(img) is img  # identity draw: no resampling blur


def test_random_transforms_keep_shape_and_replay_with_a_seed() -> None:
    img = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))
    aug = Compose(
        [
            RandomHorizontalFlip(),
            RandomRotation(15),
            RandomAffine(0, (0.2, 0.1), (0.8, 1.2)),
            ColorJitter(0.3, 0.3),
        ]
    )
    outs = [aug(img, torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert outs[0].shape == img.shape and torch.isfinite(outs[0]).all()
    assert outs[0].min() >= 0 and outs[0].max() <= 1  # jitter clamps
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    norm = normalize([0.5, 0.0, 1.0], [0.5, 1.0, 2.0])(img)
    assert torch.allclose(norm[0], (img[0] - 0.5) / 0.5)
    assert torch.allclose(norm[2], (img[2] - 1.0) / 2.0)
    with pytest.raises(ConfigError):
        RandomHorizontalFlip(p=1.5)
    with pytest.raises(ConfigError):
        normalize(0.5, 0.0)


def test_augmented_subset_is_reproducible_per_seed_epoch_and_index(tmp_path: Path) -> None:
    ds = ImageDataset.from_path(_write_folder(tmp_path, _tree()))
    aug = Compose([RandomHorizontalFlip(), RandomRotation(30)])
    a = AugmentedSubset(ds, [5, 2, 9], aug, seed=1)
    b = AugmentedSubset(ds, [9, 5], aug, seed=1)
    assert torch.equal(a[0][0], b[1][0]) and torch.equal(a[2][0], b[0][0])  # keyed by index
    assert a[1][1] == ds.labels[2] and a.labels.tolist() == ds.labels[[5, 2, 9]].tolist()
    epoch0 = _all(a)
    a.set_epoch(1)
    assert not torch.equal(_all(a), epoch0)
    a.set_epoch(0)
    assert torch.equal(_all(a), epoch0)
    assert not torch.equal(_all(AugmentedSubset(ds, [5, 2, 9], aug, seed=2)), epoch0)
    assert torch.equal(AugmentedSubset(ds, [5], None)[0][0], ds[5][0])


# ---------------------------------------------------------------------------------- real data
def _real(path: Path) -> ImageDataset:
    if not path.is_file():
        pytest.skip(f"real data not found at {path}")
    return ImageDataset.from_path(path)


def test_mednist_archive() -> None:
    ds = _real(MEDNIST)
    assert len(ds) == 55_354
    assert ds.class_names == ["AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT"]
    assert ds.class_counts.tolist() == [9400, 8354, 9400, 9400, 9400, 9400]
    assert ds.paths[0] == "MedNIST/AbdomenCT/000000.jpeg"
    for i in (0, 30_000, len(ds) - 1):
        x, y = ds[i]
        assert x.shape == (1, 64, 64) and ds.paths[i].split("/")[1] == ds.class_names[y]
    train, val, test = stratified_split(ds.labels)
    assert (len(train), len(val), len(test)) == (49_819, 3_321, 2_214)


def test_jaffe_archive() -> None:
    ds = _real(JAFFE)
    assert len(ds) == 169 and ds.class_names == list(JAFFE_CLASSES)
    # README: anger 24, disgust 23, fear 25, happiness 24, neutral 24, sadness 25, surprise 24.
    assert ds.class_counts.tolist() == [24, 23, 25, 24, 24, 25, 24]
    assert sorted(set(ds.groups)) == ["KL", "KM", "KR", "MK", "NA", "NM", "TM", "YM"]
    assert ds[0][0].shape == (1, 256, 256)
    parts = stratified_split(ds.labels, (0.75, 0.125, 0.125), seed=0, groups=ds.groups)
    sides = [set(ds.groups[p]) for p in parts]
    assert all(sides) and not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])


def test_fer2013_subset_archive() -> None:
    ds = _real(FER2013)
    assert len(ds) == 5_561
    assert ds.class_names == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert ds.class_counts.tolist() == [850, 461, 850, 850, 850, 850, 850]
    assert ds[len(ds) - 1][0].shape == (1, 48, 48)

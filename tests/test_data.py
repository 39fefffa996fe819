"""edgeresnet.data: opening ImageFolder dirs, zips and npz files, preprocessing, batching."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeresnet.data import batches, normalize, open_dataset, prepare, sample_pixels
from edgeresnet.errors import DataError
from edgeresnet.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

REPO = Path(__file__).resolve().parent.parent
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def rgb(value: int, size=(8, 8)) -> np.ndarray:
    return np.full((size[1], size[0], 3), value, dtype=np.uint8)


def save(path: Path, image: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def make_folder(root: Path) -> Path:
    """Three classes in every colour mode the decoder has to turn into RGB, plus clutter."""
    save(root / "cat" / "a.png", Image.fromarray(rgb(10)))
    save(root / "cat" / "b.JPG", Image.new("L", (8, 8), 200), quality=100)  # grayscale, upper-case
    save(root / "cat" / "sub" / "c.bmp", Image.new("RGB", (8, 8), (1, 2, 3)))  # deeper still counts
    save(root / "dog" / "a.png", Image.new("RGBA", (8, 8), (255, 0, 0, 0)))  # alpha is dropped
    save(root / "dog" / "b.jpg", Image.new("CMYK", (8, 8), (0, 0, 0, 0)), quality=100)
    save(root / "dog" / "c.gif", Image.new("P", (8, 8), 0))
    save(root / "ant" / "a.tiff", Image.new("RGB", (6, 4), (5, 6, 7)))
    save(root / "ant" / ".hidden.png", Image.new("RGB", (8, 8)))  # hidden: skipped
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "empty_class").mkdir()  # no images: skipped, not a class
    save(root / "__MACOSX" / "cat" / "._a.png", Image.new("RGB", (8, 8)))
    return root


def zip_folder(folder: Path, zip_path: Path, wrapper: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w") as z:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                z.write(file, wrapper + file.relative_to(folder).as_posix())
    return zip_path


# --------------------------------------------------------------------------- opening


def test_folder_classes_labels_and_colour_modes(tmp_path):
    ds = open_dataset(make_folder(tmp_path / "data"))
    assert ds.classes == ("ant", "cat", "dog")  # sorted, empty_class and __MACOSX left out
    assert len(ds) == 7
    assert ds.labels.dtype == np.int64
    assert ds.labels.tolist() == [0, 1, 1, 1, 2, 2, 2]
    assert [ds.name(i) for i in range(len(ds))][:4] == ["ant/a.tiff", "cat/a.png", "cat/b.JPG", "cat/sub/c.bmp"]
    images = [ds.image(i) for i in range(len(ds))]
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in images)
    assert images[0].shape == (4, 6, 3)
    assert (images[1] == 10).all()
    gray = images[2].astype(int)
    assert (gray[..., 0] == gray[..., 1]).all() and abs(gray.mean() - 200) < 2
    assert (images[4] == [255, 0, 0]).all()  # RGBA: alpha dropped, colour kept
    assert images[5].mean() > 240  # CMYK (0, 0, 0, 0) is white
    assert ds.source == str(tmp_path / "data")


def test_zip_matches_folder_without_extracting(tmp_path):
    folder = make_folder(tmp_path / "data")
    ds_dir = open_dataset(folder)
    ds_zip = open_dataset(zip_folder(folder, tmp_path / "data.zip", wrapper="val/"))
    assert ds_zip.classes == ds_dir.classes
    assert ds_zip.labels.tolist() == ds_dir.labels.tolist()
    for i in range(len(ds_dir)):
        np.testing.assert_array_equal(ds_zip.image(i), ds_dir.image(i))
    # The fingerprint names the data, not where it lies or how it is packed.
    assert ds_zip.fingerprint() == ds_dir.fingerprint()
    assert len(ds_zip.fingerprint()) == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "data.zip"]  # nothing extracted


def test_nested_single_root_folder(tmp_path):
    make_folder(tmp_path / "outer" / "test")
    (tmp_path / "outer" / "README.txt").write_text("a non-image file does not stop the descent")
    ds = open_dataset(tmp_path / "outer")
    assert ds.classes == ("ant", "cat", "dog")
    assert ds.image(0).shape == (4, 6, 3)


def test_single_class_folder_is_not_a_wrapper(tmp_path):
    save(tmp_path / "root" / "cat" / "a.png", Image.new("RGB", (4, 4)))
    ds = open_dataset(tmp_path / "root")
    assert ds.classes == ("cat",) and len(ds) == 1


def test_npz(tmp_path):
    images = np.stack([rgb(i, (5, 4)) for i in range(6)])
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 2, 0, 1, 2]), classes=np.array(["a", "b", "c"]))
    ds = open_dataset(tmp_path / "d.npz")
    assert ds.classes == ("a", "b", "c") and len(ds) == 6
    np.testing.assert_array_equal(ds.image(3), images[3])
    np.savez(tmp_path / "plain.npz", images=images, labels=np.array([0, 1, 4, 0, 1, 2], dtype=np.int32))
    plain = open_dataset(tmp_path / "plain.npz")
    assert plain.classes == ("0", "1", "2", "3", "4")
    assert plain.labels.dtype == np.int64
    # npz samples have no names, so the fingerprint covers the pixels.
    np.savez(tmp_path / "other.npz", images=images[::-1], labels=np.array([0, 1, 4, 0, 1, 2]))
    assert open_dataset(tmp_path / "other.npz").fingerprint() != plain.fingerprint()


# --------------------------------------------------------------------------- errors


def raises_one_line(match: str):
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(DataError, match=match)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            result = self.ctx.__exit__(*exc)
            assert "\n" not in str(self.info.value)
            return result

    return Check()


def test_missing_and_unknown_paths(tmp_path):
    with raises_one_line("does not exist"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "images.txt").write_text("x")
    with raises_one_line("neither a directory, a .zip nor a .npz"):
        open_dataset(tmp_path / "images.txt")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with raises_one_line("is empty"):
        open_dataset(tmp_path / "empty")


def test_unlabelled_images(tmp_path):
    save(tmp_path / "flat" / "a.jpg", Image.new("RGB", (4, 4)))
    ds = open_dataset(tmp_path / "flat")  # loose images: an unlabelled data set (tests/test_unlabelled_data.py)
    assert not ds.labelled and ds.classes == () and len(ds) == 1
    save(tmp_path / "flat" / "cat" / "b.jpg", Image.new("RGB", (4, 4)))
    with raises_one_line(r"mixes 1 loose image \(a\.jpg\) with images in 1 folder \(cat/\)"):
        open_dataset(tmp_path / "flat")


def test_class_folders_without_images(tmp_path):
    (tmp_path / "d" / "cat").mkdir(parents=True)
    (tmp_path / "d" / "cat" / "notes.txt").write_text("x")
    (tmp_path / "d" / "dog").mkdir()
    with raises_one_line("no images found"):
        open_dataset(tmp_path / "d")


def test_corrupt_image_named_at_decode_time(tmp_path):
    save(tmp_path / "d" / "cat" / "good.jpg", Image.new("RGB", (4, 4)))
    (tmp_path / "d" / "cat" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    ds = open_dataset(tmp_path / "d")  # opening lists files, decodes nothing
    with raises_one_line(r"cannot decode image .*bad\.jpg"):
        ds.image(0)
    with raises_one_line(r"bad\.jpg"):
        list(batches(ds, Preprocess.cifar(), 2, workers=2))


def test_truncated_jpeg_in_zip(tmp_path):
    good = tmp_path / "g.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(good)
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        z.writestr("cat/cut.jpg", good.read_bytes()[:200])
    ds = open_dataset(tmp_path / "d.zip")
    with raises_one_line(r"d\.zip:cat/cut\.jpg"):
        ds.image(0)


def test_corrupt_zip(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with raises_one_line("not a readable zip"):
        open_dataset(tmp_path / "bad.zip")


def test_zip_member_with_bad_crc(tmp_path):
    data = bytearray()
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        z.writestr("cat/a.png", b"x" * 100)
    data = bytearray((tmp_path / "d.zip").read_bytes())
    data[data.index(b"x" * 100) + 50] = ord("y")  # stored, so the bytes are right there
    (tmp_path / "d.zip").write_bytes(bytes(data))
    ds = open_dataset(tmp_path / "d.zip")
    with raises_one_line(r"cat/a\.png"):
        ds.image(0)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"images": np.zeros((2, 4, 4, 3), np.uint8), "classes": np.array(["a"])}, "'classes' but no 'labels'"),
        ({"labels": np.zeros(2, int)}, "no 'images'"),
        ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.zeros(3, int)}, "2 images but 3 labels"),
        ({"images": np.zeros((2, 4, 4, 3), np.float32), "labels": np.zeros(2, int)}, "not N,H,W,3 uint8"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.zeros(2, int)}, "not N,H,W,3 uint8"),
        ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.zeros(2, float)}, "not N integers"),
        ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0, 2]), "classes": np.array(["a", "b"])},
         "label 2 but only 2 classes"),
    ],
)
def test_bad_npz(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with raises_one_line(match):
        open_dataset(tmp_path / "d.npz")


def test_corrupt_npz(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"garbage")
    with raises_one_line("not a readable .npz"):
        open_dataset(tmp_path / "d.npz")


# --------------------------------------------------------------------------- preprocessing


def test_prepare_resize_then_center_crop():
    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)  # h=200, w=300
    out = prepare(image, Preprocess.imagenet())  # resize 256, crop 224
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    # by hand, as torchvision: shorter side 200 -> 256, longer int(256 * 300 / 200) = 384;
    # crop offsets round((384 - 224) / 2) = 80 and round((256 - 224) / 2) = 16.
    expected = Image.fromarray(image).resize((384, 256), Image.Resampling.BILINEAR).crop((80, 16, 304, 240))
    np.testing.assert_array_equal(out, np.asarray(expected))
    tall = prepare(np.zeros((500, 230, 3), np.uint8), Preprocess.imagenet())
    assert tall.shape == (224, 224, 3)


def test_prepare_without_resize():
    cifar = Preprocess.cifar()
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert prepare(image, cifar) is image  # already the right size: untouched
    big = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    expected = Image.fromarray(big).resize((32, 32), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(prepare(big, cifar), np.asarray(expected))


def test_normalize_by_hand():
    batch = np.array([[[[0, 128, 255], [10, 20, 30]]]], dtype=np.uint8)  # N=1, H=1, W=2
    out = normalize(batch, Preprocess.cifar())
    assert out.shape == (1, 3, 1, 2) and out.dtype == np.float32 and out.flags.c_contiguous
    for c in range(3):
        for w in range(2):
            want = (batch[0, 0, w, c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
            assert out[0, c, 0, w] == pytest.approx(want, abs=1e-6)
    # BGR: blue comes first, normalised with blue's statistics.
    bgr = normalize(batch, Preprocess(input_size=1, channel_order="BGR"))
    np.testing.assert_array_equal(bgr, out[:, ::-1])
    custom = normalize(batch, Preprocess(input_size=1, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    assert custom[0, 2, 0, 0] == pytest.approx(1.0) and custom[0, 0, 0, 0] == pytest.approx(-1.0)


def test_normalize_is_bit_identical_to_torch():
    torch = pytest.importorskip("torch")
    batch = np.random.default_rng(3).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    # ToTensor + Normalize, written out
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(torch.float32).div(255)
    x = x.sub(torch.tensor(IMAGENET_MEAN)[:, None, None]).div(torch.tensor(IMAGENET_STD)[:, None, None])
    np.testing.assert_array_equal(normalize(batch, Preprocess.cifar()), x.numpy())


# --------------------------------------------------------------------------- batches, subsets


def npz_dataset(tmp_path, n=10, size=(6, 6)):
    images = np.stack([rgb(i * 20 % 256, size) for i in range(n)])
    np.savez(tmp_path / "d.npz", images=images, labels=np.arange(n) % 3)
    return open_dataset(tmp_path / "d.npz")


def test_batches_layouts_and_order(tmp_path, capsys):
    ds = npz_dataset(tmp_path)
    spec = Preprocess(input_size=4, resize=4)
    got = list(batches(ds, spec, 4, progress="Loading"))
    assert [len(x) for x, _ in got] == [4, 4, 2]
    x, y = got[0]
    assert x.shape == (4, 3, 4, 4) and x.dtype == np.float32
    assert y.tolist() == [0, 1, 2, 0]
    np.testing.assert_allclose(x[1, 0], (20 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], rtol=1e-6)
    raw = next(batches(ds, spec, 4, layout="NHWC", normalized=False))[0]
    assert raw.shape == (4, 4, 4, 3) and raw.dtype == np.uint8 and (raw[2] == 40).all()
    nhwc = next(batches(ds, spec, 4, layout="NHWC"))[0]
    np.testing.assert_array_equal(nhwc, x.transpose(0, 2, 3, 1))
    assert capsys.readouterr().out == ""  # the bar goes to stderr only
    with pytest.raises(ValueError):
        next(batches(ds, spec, 4, layout="CHW"))


def test_threads_give_the_same_batches(tmp_path):
    ds = open_dataset(make_folder(tmp_path / "data"))
    spec = Preprocess(input_size=8)
    one = [x for x, _ in batches(ds, spec, 3, workers=1)]
    many = [x for x, _ in batches(ds, spec, 3, workers=3)]
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)


def test_subset_is_seeded_sorted_and_bounded(tmp_path):
    ds = npz_dataset(tmp_path, n=50)
    a, b, c = ds.subset(10, seed=1), ds.subset(10, seed=1), ds.subset(10, seed=2)
    names = lambda d: [d.name(i) for i in range(len(d))]  # noqa: E731
    assert names(a) == names(b) and names(a) != names(c)
    assert [int(n) for n in names(a)] == sorted(int(n) for n in names(a))
    assert len(a) == 10 and a.labels.tolist() == [int(n) % 3 for n in names(a)]
    assert a.fingerprint() == b.fingerprint() != ds.fingerprint()
    assert len(ds.subset(None)) == len(ds.subset(50)) == len(ds.subset(1000)) == 50
    assert len(a.subset(4)) == 4  # a subset of a subset
    with raises_one_line("subset of 0"):
        ds.subset(0)


def test_sample_pixels(tmp_path):
    ds = npz_dataset(tmp_path, n=20)
    spec = Preprocess(input_size=6, channel_order="BGR")
    pixels = sample_pixels(ds, spec, 8, seed=5)
    assert pixels.shape == (8, 6, 6, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, sample_pixels(ds, spec, 8, seed=5))
    assert len(sample_pixels(ds, spec, 100)) == 20
    # RGB whatever the model's channel order: that belongs to normalize(), as to an image-input artifact.
    subset = ds.subset(8, seed=5)
    np.testing.assert_array_equal(pixels, np.stack([prepare(subset.image(i), spec) for i in range(8)]))
    with raises_one_line("cannot sample 0 images"):
        sample_pixels(ds, spec, 0)


# --------------------------------------------------------------------------- the real data, and imports


def test_cifar10_test_zip(shared):
    ds = open_dataset(shared / "datasets" / "cifar10-jpeg" / "test.zip")
    assert ds.classes == CIFAR_CLASSES
    assert len(ds) == 10_000
    assert np.bincount(ds.labels).tolist() == [1000] * 10
    sample = ds.subset(20, seed=0)
    for i in range(len(sample)):
        image = sample.image(i)
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert sample.name(i).startswith(CIFAR_CLASSES[sample.labels[i]] + "/")
    x, y = next(batches(sample, Preprocess.cifar(), 20))
    assert x.shape == (20, 3, 32, 32) and np.isfinite(x).all() and -2.2 < x.min() < x.max() < 2.7


def test_imports_need_neither_torch_nor_tensorflow():
    code = (
        "import sys, edgeresnet.data, edgeresnet.evaluate; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_samples_names_the_embedded_images_unless_a_path_of_that_name_exists(tmp_path, monkeypatch):
    from edgeresnet.assets import DEMO_DATA
    from edgeresnet.data import resolve_data_path

    monkeypatch.chdir(tmp_path)
    samples = open_dataset("samples")
    assert len(samples) == 300 and samples.fingerprint() == open_dataset(DEMO_DATA).fingerprint()
    (tmp_path / "samples").mkdir()  # a folder the user named so wins
    assert resolve_data_path("samples") == Path("samples")

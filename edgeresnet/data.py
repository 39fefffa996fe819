"""Image data sets, labelled or not, read the way torchvision reads them, without torch.

A labelled data set is an ImageFolder directory (``root/<class>/<image>``), a ``.zip`` of
one, or an ``.npz`` with ``images`` and ``labels``. An unlabelled one is a directory or
``.zip`` of loose images (``root/<image>``), or an ``.npz`` with ``images`` alone: it
serves calibration, fidelity and latency, and has no accuracy. Images are decoded lazily with Pillow, one at
a time, so a 50,000-image zip costs nothing until it is iterated. This module imports
only numpy and Pillow (rich inside the function that draws a progress bar), because the
benchmark runner on a Raspberry Pi uses it without torch or tensorflow.

Everything here follows torchvision's ``ImageFolder`` + ``Resize`` + ``CenterCrop`` +
``ToTensor`` + ``Normalize`` to the bit, so an accuracy measured here is the accuracy
the PyTorch recipe would measure.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from edgeresnet.errors import DataError
from edgeresnet.preprocess import Preprocess

# torchvision's IMG_EXTENSIONS plus gif.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".gif", ".tif", ".tiff")

LAYOUT_HINT = (
    "give an ImageFolder directory (root/<class>/<image>), a .zip of one, or an .npz with 'images' and 'labels' "
    "(unlabelled: loose images root/<image>, or an .npz with 'images' only)"
)

Layout = Literal["NCHW", "NHWC"]


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _ignored(relpath: str) -> bool:
    """Hidden files (.DS_Store, ._foo.jpg) and macOS zip metadata are never samples."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relpath.split("/"))


# --------------------------------------------------------------------------- data set


class ImageDataset:
    """Images, labelled or not, decoded on demand.

    ``reader(k)`` decodes sample ``k`` of the underlying source to an RGB Pillow image;
    a subset shares the reader and keeps only the positions it selected. ``labels=None``
    makes an unlabelled data set: no classes (``classes == ()``, ``labelled`` False), and
    ``labels`` is -1 for every image, so that loaders still yield (images, labels) pairs.
    """

    def __init__(
        self,
        source: str,
        classes: Sequence[str],
        names: Sequence[str],
        labels: np.ndarray | None,
        reader: Callable[[int], Image.Image],
        index: np.ndarray | None = None,
        content: np.ndarray | None = None,
    ):
        self.source = source
        self.classes: tuple[str, ...] = tuple(classes) if labels is not None else ()
        self._names = names
        self._all_labels = labels
        self._reader = reader
        self._index = np.arange(len(names), dtype=np.int64) if index is None else index
        self._content = content  # the npz pixels: an npz has no file names to fingerprint
        self._labels = (
            labels[self._index].astype(np.int64)
            if labels is not None
            else np.full(len(self._index), -1, dtype=np.int64)
        )
        self._labels.flags.writeable = False

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        kind = f"{len(self.classes)} classes" if self.labelled else "no labels"
        return f"ImageDataset({self.source!r}, {len(self)} images, {kind})"

    @property
    def labelled(self) -> bool:
        """Whether the images have classes; without, there is no accuracy to measure on them."""
        return self._all_labels is not None

    @property
    def labels(self) -> np.ndarray:
        """Each image's class index; -1 for every image of an unlabelled data set."""
        return self._labels

    def unlabelled(self) -> ImageDataset:
        """The same images without their labels (e.g. sample images of classes the model does not predict)."""
        if not self.labelled:
            return self
        return ImageDataset(self.source, (), self._names, None, self._reader, self._index, self._content)

    def name(self, i: int) -> str:
        """The sample's path inside the data set (``class/file.jpg``), for reports."""
        return self._names[self._index[i]]

    def pil_image(self, i: int) -> Image.Image:
        return self._reader(int(self._index[i]))

    def image(self, i: int) -> np.ndarray:
        """Sample ``i`` as it is stored: HWC uint8 RGB, not resized."""
        return np.asarray(self.pil_image(i))

    def subset(self, limit: int | None, seed: int = 0) -> ImageDataset:
        """``limit`` samples drawn at random with ``seed``, kept in data-set order."""
        if limit is None or limit >= len(self):
            return self
        if limit <= 0:
            raise DataError(f"cannot take a subset of {limit} images", "give a positive limit, or none for all")
        chosen = np.sort(np.random.default_rng(seed).choice(len(self), size=limit, replace=False))
        return ImageDataset(
            self.source, self.classes, self._names, self._all_labels, self._reader, self._index[chosen], self._content
        )

    def in_class_order(self, classes: Sequence[str]) -> ImageDataset:
        """The same images labelled by their class's position in ``classes`` (the same names in
        another order: a model's own label order, where folders sort alphabetically)."""
        if tuple(classes) == self.classes or not self.labelled:
            return self
        if sorted(classes) != sorted(self.classes):
            raise DataError(
                f"the data's classes {list(self.classes)[:5]} are not the model's {list(classes)[:5]}",
                "use data with one folder per class the model predicts",
            )
        position = np.array([list(classes).index(name) for name in self.classes], dtype=np.int64)
        return ImageDataset(
            self.source, classes, self._names, position[self._all_labels], self._reader, self._index, self._content
        )

    def fingerprint(self) -> str:
        """A short hash of the classes, the samples' relative paths and labels.

        It does not depend on where the data set lies, nor on whether it is zipped or
        unpacked, so the same data gives the same fingerprint in every manifest.
        """
        h = hashlib.sha256()
        h.update("\n".join(self.classes).encode() + b"\0")
        for k, label in zip(self._index.tolist(), self._labels.tolist()):
            h.update(f"{self._names[k]}\t{label}\n".encode())
        if self._content is not None:
            h.update(np.ascontiguousarray(self._content[self._index]).tobytes())
        return h.hexdigest()[:16]


# --------------------------------------------------------------------------- opening


SAMPLES = "samples"  # `--data samples`, on every command: the embedded demo images (edgeresnet/assets)


def resolve_data_path(path: str | os.PathLike) -> Path:
    """``path``; the name ``samples``, where no file or folder of that name exists, is the 300
    CIFAR-10 test images the package embeds (what the demo runs on, also on a device)."""
    path = Path(path)
    if str(path) == SAMPLES and not path.exists():
        from .assets import DEMO_DATA

        return DEMO_DATA
    return path


def open_dataset(path: str | os.PathLike) -> ImageDataset:
    """Open an ImageFolder directory, a .zip of one, or an .npz of images and labels; or, without
    labels, a directory or .zip of loose images, or an .npz of images alone (see ``labelled``);
    ``samples``: the embedded sample images."""
    path = resolve_data_path(path)
    if not path.exists():
        raise DataError(f"data set {path} does not exist", f"check the path; {LAYOUT_HINT}")
    if path.is_dir():
        return _open_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _open_zip(path)
    if suffix == ".npz":
        return _open_npz(path)
    raise DataError(f"data set {path} is neither a directory, a .zip nor a .npz file", LAYOUT_HINT)


def _open_folder(root: Path) -> ImageDataset:
    files = []
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
        rel = Path(dirpath).relative_to(root).as_posix()
        here = "" if rel == "." else rel + "/"
        files += [here + f for f in filenames]
    prefix, classes, names, labels = _image_folder(files, str(root))

    def read(k: int) -> Image.Image:
        file = root / (prefix + names[k])
        try:
            with open(file, "rb") as f:
                return _decode(f, str(file))
        except OSError as exc:  # unreadable file (permissions, vanished)
            raise DataError(f"cannot read image {file}: {exc}", "fix its permissions or remove it") from exc

    return ImageDataset(str(root), classes, names, labels, read)


def _open_zip(path: Path) -> ImageDataset:
    try:
        archive = zipfile.ZipFile(path)
        members = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable zip file ({exc})", "re-create or re-download it") from exc
    try:
        prefix, classes, names, labels = _image_folder(members, str(path))
    except DataError:
        archive.close()
        raise
    # One handle for all threads: reading a stored member is quick, so a lock around
    # the read costs little, and decoding happens outside it.
    lock = threading.Lock()

    def read(k: int) -> Image.Image:
        member = prefix + names[k]
        try:
            with lock:
                data = archive.read(member)
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
            raise DataError(f"cannot read {member} from {path} ({exc})", "re-create or re-download the zip") from exc
        return _decode(io.BytesIO(data), f"{path}:{member}")

    return ImageDataset(str(path), classes, names, labels, read)


def _image_folder(files: list[str], where: str) -> tuple[str, list[str], list[str], np.ndarray | None]:
    """Wrapper prefix, classes, sample paths (relative to the class root) and labels.

    As torchvision's ImageFolder: classes are the sorted names of the folders under the
    root, and every image below a class folder (at any depth) belongs to it. Unlike it,
    a class folder without images is skipped instead of failing the whole data set.
    Images that all lie at the top (no class folders) are an unlabelled data set: no
    classes, labels None. Loose images beside class folders are refused: whether the
    folders are classes or just folders is the user's to say.
    """
    files = sorted(f for f in files if not _ignored(f))
    if not files:
        raise DataError(
            f"data set {where} is empty",
            "put images in ImageFolder layout root/<class>/<image>, or loose images root/<image> for unlabelled data",
        )
    prefix, files = _strip_wrappers(files)

    images = [f for f in files if is_image_name(f)]
    labelled = [f for f in images if "/" in f]
    loose = [f for f in images if "/" not in f]
    if not images:
        raise DataError(
            f"no images found in {where} (looked for {', '.join(IMAGE_EXTENSIONS)})",
            "put images in ImageFolder layout root/<class>/<image>, or loose images root/<image> for unlabelled data",
        )
    if loose and labelled:
        folders = sorted({f.split("/", 1)[0] for f in labelled})
        inside = f"{prefix}" if prefix else ""
        raise DataError(
            f"data set {where} mixes {len(loose)} loose image{'s' if len(loose) > 1 else ''} ({inside}{loose[0]}"
            f"{', ...' if len(loose) > 1 else ''}) with images in {len(folders)} folder"
            f"{'s' if len(folders) > 1 else ''} ({inside}{folders[0]}/{', ...' if len(folders) > 1 else ''}), "
            "so it is unclear whether the folders are classes",
            "for labels, move the loose images into their class folders (root/<class>/<image>); for unlabelled "
            "data, keep only loose images (root/<image>)",
        )
    if loose:
        return prefix, [], loose, None
    classes = sorted({f.split("/", 1)[0] for f in labelled})
    label_of = {c: i for i, c in enumerate(classes)}
    labels = np.array([label_of[f.split("/", 1)[0]] for f in labelled], dtype=np.int64)
    return prefix, classes, labelled, labels


def _strip_wrappers(files: list[str]) -> tuple[str, list[str]]:
    """Step into single folders that wrap an ImageFolder, like the ``test/`` of test.zip.

    A folder is a wrapper when it is the root's only folder, the root holds no images,
    and the folder itself holds only subfolders of images; a root with one class folder
    full of images stays a one-class data set. Returns the stripped prefix and the rest.
    """
    prefix = ""
    while True:
        top_images = any("/" not in f and is_image_name(f) for f in files)
        folders = {f.split("/", 1)[0] for f in files if "/" in f}
        if top_images or len(folders) != 1:
            return prefix, files
        inner = [f.split("/", 1)[1] for f in files if "/" in f]
        if any("/" not in f and is_image_name(f) for f in inner) or not any("/" in f for f in inner):
            return prefix, files
        prefix += folders.pop() + "/"
        files = inner


def _open_npz(path: Path) -> ImageDataset:
    hint = (
        "save it with np.savez(path, images=<N,H,W,3 uint8>, labels=<N ints>, classes=<optional names>); "
        "without labels, images alone"
    )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as exc:  # a corrupt npz fails in zipfile, numpy's format parser or zlib
        raise DataError(f"{path} is not a readable .npz file ({exc})", hint) from exc
    if "images" not in arrays:
        raise DataError(f"{path} has no 'images' array (it has {sorted(arrays)})", hint)
    images, labels = arrays["images"], arrays.get("labels")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"'images' in {path} is {images.dtype} of shape {images.shape}, not N,H,W,3 uint8", hint)
    if labels is not None:
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"'labels' in {path} is {labels.dtype} of shape {labels.shape}, not N integers", hint)
        if len(images) != len(labels):
            raise DataError(f"{path} has {len(images)} images but {len(labels)} labels", hint)
    if len(images) == 0:
        raise DataError(f"data set {path} holds no images", hint)
    classes: list[str] = []
    if labels is None:
        if "classes" in arrays:
            raise DataError(f"{path} has 'classes' but no 'labels' array", hint)
    elif labels.min() < 0:
        raise DataError(f"{path} has negative labels", "labels must be class indices 0, 1, 2, ...")
    elif "classes" in arrays:
        classes = [str(c) for c in arrays["classes"].reshape(-1)]
        if labels.max() >= len(classes):
            raise DataError(f"{path} has label {labels.max()} but only {len(classes)} classes", hint)
    else:
        classes = [str(i) for i in range(int(labels.max()) + 1)]

    def read(k: int) -> Image.Image:
        return Image.fromarray(images[k], "RGB")

    names = [str(i) for i in range(len(images))]
    return ImageDataset(
        str(path), classes, names, None if labels is None else labels.astype(np.int64), read, content=images
    )


def _decode(fp, name: str) -> Image.Image:
    """Decode one image file to RGB; a broken file is the user's to fix, so say which."""
    try:
        with Image.open(fp) as im:
            im.load()
            # As torchvision's pil_loader: grayscale, palette, RGBA, CMYK all become RGB.
            return im.convert("RGB") if im.mode != "RGB" else im.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode image {name} ({exc})", "replace or remove the file") from exc


# --------------------------------------------------------------------------- preprocessing


def prepare(image: np.ndarray, spec: Preprocess) -> np.ndarray:
    """Resize and crop one HWC uint8 RGB image to ``spec.input_size`` square."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HWC uint8 RGB image, got {image.dtype} of shape {image.shape}")
    if image.shape[:2] == (spec.input_size, spec.input_size) and spec.resize in (None, spec.input_size):
        return image  # the CIFAR case: nothing to do, so skip the round trip through Pillow
    return np.asarray(_prepare_pil(Image.fromarray(image, "RGB"), spec))


def _prepare_pil(im: Image.Image, spec: Preprocess) -> Image.Image:
    size = spec.input_size
    if spec.resize is None or not spec.center_crop:
        # Without a resize, or without a crop, the only way to the model's size is to
        # scale the whole image to it (aspect ratio not kept).
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return im
    # torchvision's Resize(int): the shorter side becomes `resize`, the longer is truncated.
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = spec.resize, int(spec.resize * long / short)
    new_size = (new_short, new_long) if w <= h else (new_long, new_short)
    if new_size != im.size:
        im = im.resize(new_size, Image.Resampling.BILINEAR)
    # torchvision's CenterCrop rounds the offsets with Python's round().
    w, h = im.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def channel_indices(spec: Preprocess) -> list[int]:
    """Which RGB channel feeds each of the model's input channels (BGR models: reversed).
    The one definition the exporters bake into image-input files, too."""
    return [0, 1, 2] if spec.channel_order == "RGB" else [2, 1, 0]


def normalize(batch: np.ndarray, spec: Preprocess) -> np.ndarray:
    """NHWC uint8 RGB to NCHW float32: (x / 255 - mean) / std, in the spec's channel order.

    ``mean`` and ``std`` are per colour in R, G, B order (as IMAGENET_MEAN), whatever the
    channel order: a BGR model gets blue first, normalised with the blue statistics. The
    float32 operations are those of ToTensor + Normalize, so the result is bit-identical.
    """
    if spec.channel_order == "L":
        batch = luma(batch)[..., None]
        order = [0]
    else:
        order = channel_indices(spec)
    mean = np.asarray(spec.mean, dtype=np.float32)[order]
    std = np.asarray(spec.std, dtype=np.float32)[order]
    x = batch[..., order].astype(np.float32) / np.float32(255)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def luma(batch: np.ndarray) -> np.ndarray:
    """NHWC uint8 RGB to NHW uint8 gray, exactly as Pillow's convert("L") (ITU-R 601-2)."""
    weights = np.array([19595, 38470, 7471], dtype=np.uint32)
    return ((batch.astype(np.uint32) @ weights + 0x8000) >> 16).astype(np.uint8)


def _arrange(batch: np.ndarray, spec: Preprocess, layout: Layout, normalized: bool) -> np.ndarray:
    if normalized:
        x = normalize(batch, spec)
        return x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    # Raw RGB pixels, for an artifact that takes images (its channel order and
    # normalisation are inside it, as a camera frame would be fed to it in an app).
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2) if layout == "NCHW" else batch)


# --------------------------------------------------------------------------- iteration


# Threads pay off only for large images: Pillow drops the GIL while it decodes and
# resizes, but a 32x32 JPEG is mostly Python header parsing, where threads only contend
# (measured on test.zip: 2.9 s in one thread, 4.5 s in two).
THREADED_MIN_PIXELS = 128 * 128


def _default_workers(dataset: ImageDataset) -> int:
    if len(dataset) == 0:
        return 1
    width, height = dataset.pil_image(0).size
    return min(4, os.cpu_count() or 1) if width * height >= THREADED_MIN_PIXELS else 1


def batches(
    dataset: ImageDataset,
    spec: Preprocess,
    batch_size: int,
    *,
    layout: Layout = "NCHW",
    normalized: bool = True,
    progress: str | None = None,
    workers: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (inputs, labels) in data-set order; the last batch may be smaller.

    ``normalized`` gives float32 ready for a float model; without it, the uint8 RGB
    pixels (for an artifact that takes images and normalises them itself). ``progress``
    draws a rich bar with that description on stderr. ``workers`` threads decode images; 1
    decodes in the calling thread, and None chooses from the size of the first image.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}")
    workers = _default_workers(dataset) if workers is None else max(1, workers)

    def load(i: int) -> np.ndarray:
        return np.asarray(_prepare_pil(dataset.pil_image(i), spec))

    def generate(advance: Callable[[int], None]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        pool = ThreadPoolExecutor(workers) if workers > 1 else None
        try:
            for start in range(0, len(dataset), batch_size):
                stop = min(start + batch_size, len(dataset))
                indices = range(start, stop)
                pixels = np.stack(list(pool.map(load, indices) if pool else map(load, indices)))
                yield _arrange(pixels, spec, layout, normalized), dataset.labels[start:stop]
                advance(stop - start)
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)

    if progress is None:
        yield from generate(lambda n: None)
        return
    with progress_bar() as bar:
        task = bar.add_task(progress, total=len(dataset))
        yield from generate(lambda n: bar.advance(task, n))


def progress_bar(*columns, disable: bool = False):
    """A rich progress bar on stderr; ``columns`` go between the count and the times."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # stderr, so that a command whose stdout is JSON or a table stays clean.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=disable,
    )


def working(description: str):
    """A spinner with the time elapsed, on stderr, for a step that cannot count its progress (a
    converter in another process, a simulator's calibration passes); gone when the step ends."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(), TextColumn(description), TimeElapsedColumn(), console=Console(stderr=True), transient=True
    )
    progress.add_task(description, total=None)
    return progress


def sample_pixels(dataset: ImageDataset, spec: Preprocess, n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded images (all of them if fewer), resized and cropped: one NHWC uint8 RGB batch.

    Kept as pixels, the truth every consumer derives its input from: ``normalize`` for a
    PyTorch model or a tensor-input artifact, as they are for an image-input one.
    """
    if n <= 0:
        raise DataError(f"cannot sample {n} images", "give a positive number of images")
    if len(dataset) == 0:
        raise DataError(f"no images in {dataset.source}", "pass a data set with images")
    sample = dataset.subset(n, seed)
    pixels, _ = next(batches(sample, spec, len(sample), layout="NHWC", normalized=False))
    return pixels

"""Opening a data set: an ImageFolder directory, a .zip of one, an .npz, or the embedded samples.

Each source becomes an ``ImageDataset`` whose reader decodes one image on demand with
Pillow, to RGB as torchvision's ``pil_loader`` does.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from edgeresnet.errors import DataError

from .dataset import ImageDataset
from .imagefolder import image_folder

LAYOUT_HINT = (
    "give an ImageFolder directory (root/<class>/<image>), a .zip of one, or an .npz with 'images' and 'labels' "
    "(unlabelled: loose images root/<image>, or an .npz with 'images' only)"
)


SAMPLES = "samples"  # `--data samples`, on every command: the embedded demo images (edgeresnet/assets)


def resolve_data_path(path: str | os.PathLike) -> Path:
    """``path``; the name ``samples``, where no file or folder of that name exists, is the 300
    CIFAR-10 test images the package embeds (what the demo runs on, also on a device)."""
    path = Path(path)
    if str(path) == SAMPLES and not path.exists():
        from edgeresnet.assets import DEMO_DATA

        return DEMO_DATA
    return path


def open_dataset(path: str | os.PathLike) -> ImageDataset:
    """Open an ImageFolder directory, a .zip of one, or an .npz of images and labels; or, without
    labels, a directory or .zip of loose images, or an .npz of images alone (see ``labelled``);
    ``samples``: the embedded sample images.

    Args:
        path: the data set: an ImageFolder directory (root/<class>/<image>) or a .zip of one,
            an .npz with ``images`` (N,H,W,3 uint8) and ``labels``, or loose images without
            labels; "samples": the 300 CIFAR-10 test images the package embeds.

    Images are decoded one at a time, as they are read; opening a large zip costs little.

    Example::

        data = edgeresnet.open_dataset("cifar10/test.zip")
        print(len(data), data.classes, data.labelled)
    """
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
    prefix, classes, names, labels = image_folder(files, str(root))

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
        prefix, classes, names, labels = image_folder(members, str(path))
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


def _decode(fp: IO[bytes], name: str) -> Image.Image:
    """Decode one image file to RGB; a broken file is the user's to fix, so say which."""
    try:
        with Image.open(fp) as im:
            im.load()
            # As torchvision's pil_loader: grayscale, palette, RGBA, CMYK all become RGB.
            return im.convert("RGB") if im.mode != "RGB" else im.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode image {name} ({exc})", "replace or remove the file") from exc

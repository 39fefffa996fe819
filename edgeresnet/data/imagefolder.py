"""torchvision's ImageFolder rules: which files of a folder or zip are samples, and their classes.

Pure bookkeeping on relative paths (``class/file.jpg``), so a directory and a zip of it
give the same samples in the same order: the same accuracy and the same fingerprint.
"""

from __future__ import annotations

import numpy as np

from edgeresnet.errors import DataError

# torchvision's IMG_EXTENSIONS plus gif.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".gif", ".tif", ".tiff")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _ignored(relpath: str) -> bool:
    """Hidden files (.DS_Store, ._foo.jpg) and macOS zip metadata are never samples."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relpath.split("/"))


def image_folder(files: list[str], where: str) -> tuple[str, list[str], list[str], np.ndarray | None]:
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

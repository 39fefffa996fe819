"""The ImageDataset type: images, labelled or not, that their source decodes one at a time.

Where the images come from (a folder, a zip, an npz) is ``opening``'s business; a data set
only holds a reader that decodes sample ``k``, so a subset or a relabelling copies nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from edgeresnet.errors import DataError


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

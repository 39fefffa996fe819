"""Image data sets, labelled or not, read the way torchvision reads them, without torch.

A labelled data set is an ImageFolder directory (``root/<class>/<image>``), a ``.zip`` of
one, or an ``.npz`` with ``images`` and ``labels``. An unlabelled one is a directory or
``.zip`` of loose images (``root/<image>``), or an ``.npz`` with ``images`` alone: it
serves calibration, fidelity and latency, and has no accuracy. Images are decoded lazily with Pillow, one at
a time, so a 50,000-image zip costs nothing until it is iterated. This package imports
only numpy and Pillow (rich inside the functions that draw progress), because the
benchmark runner on a Raspberry Pi uses it without torch or tensorflow.

Everything here follows torchvision's ``ImageFolder`` + ``Resize`` + ``CenterCrop`` +
``ToTensor`` + ``Normalize`` to the bit, so an accuracy measured here is the accuracy
the PyTorch recipe would measure.

- dataset.py: ``ImageDataset``, images decoded on demand; subsets, relabelling, fingerprint
- imagefolder.py: ImageFolder's rules, which files are samples and of which class
- opening.py: ``open_dataset`` for a directory, a zip, an npz or the embedded ``samples``
- transforms.py: resize, crop, normalise and lay out pixels as torchvision does
- batching.py: ``batches`` of model inputs, ``sample_pixels`` for calibration
- progress.py: progress bars and spinners on stderr
"""

from .batching import THREADED_MIN_PIXELS as THREADED_MIN_PIXELS
from .batching import batches as batches
from .batching import sample_pixels as sample_pixels
from .dataset import ImageDataset as ImageDataset
from .imagefolder import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from .imagefolder import is_image_name as is_image_name
from .opening import LAYOUT_HINT as LAYOUT_HINT
from .opening import SAMPLES as SAMPLES
from .opening import open_dataset as open_dataset
from .opening import resolve_data_path as resolve_data_path
from .progress import progress_bar as progress_bar
from .progress import working as working
from .transforms import Layout as Layout
from .transforms import channel_indices as channel_indices
from .transforms import luma as luma
from .transforms import normalize as normalize
from .transforms import prepare as prepare

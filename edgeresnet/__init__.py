"""edgeresnet: a trained PyTorch ResNet in, measured and verified edge artifacts out.

The public API (its table: ``_api.py``). Names are imported on first use, so `import
edgeresnet` stays fast and the device-side runner (edgeresnet.runner) works without torch.
"""

from ._api import __all__ as __all__
from ._api import __dir__ as __dir__
from ._api import __getattr__ as __getattr__
from ._version import __version__ as __version__

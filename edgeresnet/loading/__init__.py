"""Reading a model: a checkpoint, a folder or an nn.Module becomes a described ``Model``.

``checkpoint``: what a file holds and which architecture it is; ``model``: the ``Model``
every stage and exporter takes (``load_model``, ``as_model``) and the labels it predicts.
"""

from .checkpoint import load as load
from .checkpoint import load_with_spec as load_with_spec
from .checkpoint import read_model as read_model
from .model import as_model as as_model
from .model import check_labels as check_labels
from .model import fit_labels as fit_labels
from .model import load_model as load_model

"""Reading a model: a checkpoint, a folder or an nn.Module becomes a described ``Model``.

``checkpoint``: the entry points (``read_model``, ``load``), from a file, a folder or a module;
``files``: what a file holds, read without running it; ``state_dict``: the weights it held,
cleaned; ``architecture``: the network those weights describe, built and loaded;
``module_objects``: a module the caller passes; ``model``: the ``Model`` every stage and
exporter takes (``load_model``, ``as_model``) and the labels it predicts.
"""

from .architecture import Intake as Intake
from .checkpoint import load as load
from .checkpoint import load_with_spec as load_with_spec
from .checkpoint import read_model as read_model
from .model import as_model as as_model
from .model import check_labels as check_labels
from .model import fit_labels as fit_labels
from .model import load_model as load_model

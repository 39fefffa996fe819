"""The model zoo, and the value that carries a network through the pipeline.

- resnet.py, cifar.py: torchvision-layout ImageNet ResNets and He et al.'s CIFAR ResNets
- general.py: one class for every other layout (stems, pre-activation, ResNet-D, SE, ECA)
- registry.py: every zoo model by name, and ``create``
- spec.py: ``ArchSpec``, a ResNet described by its structure, which builds it again
- detect.py: the ArchSpec a state dict holds, read from its keys and shapes
- weights.py: whether weights fit a module, checked on shape-only (meta) modules
- plan.py: ``ChannelPlan``, what a pruned architecture kept
- summary.py: parameters, MACs and stage widths
- model.py: ``Model``, a network with its preprocessing, labels, plan and QAT state

``create``, ``family_of`` and ``list_models`` come from the registry, which imports a
builder's module (and torch) only when a model is built.
"""

from .registry import create as create
from .registry import family_of as family_of
from .registry import list_models as list_models

"""The model zoo: torchvision-layout ImageNet ResNets and He et al.'s CIFAR ResNets.

``create``, ``family_of`` and ``list_models`` come from the registry, which imports a
builder's module (and torch) only when a model is built.
"""

from edgeresnet.models.registry import create, family_of, list_models

__all__ = ["create", "family_of", "list_models"]

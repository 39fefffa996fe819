"""The model zoo: torchvision-layout ImageNet ResNets and He et al.'s CIFAR ResNets."""

from edgeresnet.models import cifar, resnet  # noqa: F401  (importing registers the builders)
from edgeresnet.models.registry import create, family_of, list_models

__all__ = ["create", "family_of", "list_models"]

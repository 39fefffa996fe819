"""The embedded demo: a trained ResNet-20 and 300 labelled CIFAR-10 images (see README.md here)."""

from .demo import ASSETS as ASSETS
from .demo import DEMO_DATA as DEMO_DATA
from .demo import DEMO_MODEL as DEMO_MODEL

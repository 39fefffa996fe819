"""Where the embedded demo lies: a trained ResNet-20 and 300 labelled CIFAR-10 images (README.md here)."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
DEMO_MODEL = ASSETS / "resnet20_cifar10jpeg.pt"
DEMO_DATA = ASSETS / "cifar10-samples.zip"

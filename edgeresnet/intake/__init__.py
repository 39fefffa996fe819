"""Intake: whatever ResNet the user has, read into one of the zoo's networks.

- layouts.py: the source layouts (torchvision, timm, Hugging Face, pytorch-cifar, He et
  al.'s CIFAR) and how their weight names map into the zoo's
- huggingface.py: a save_pretrained folder's weights, labels and preprocessing
- pt2/: torch.export archives, read without unpickling

``edgeresnet.loading.read_model`` is the entry point that uses them.
"""

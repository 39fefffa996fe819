"""Training shared by the distill and qat stages: data, augmentation, losses, the loop."""

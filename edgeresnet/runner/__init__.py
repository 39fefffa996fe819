"""The device side: loads an artifact in its runtime, times it and measures accuracy.

This package imports neither torch nor TensorFlow (only numpy, Pillow and the runtime
it runs), so that it installs on a Raspberry Pi with `pip install "edgeresnet[runner]"`.
"""

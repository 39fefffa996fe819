"""Stages: each takes a Model (and data) and returns a new value; none changes its input.

One module per stage (prune, distill, qat, ptq); ``STAGES`` (registry.py) lists them with their
settings classes, functions and order rules, without importing them (they import torch).
"""

from .registry import STAGES as STAGES
from .registry import Exclusion as Exclusion
from .registry import StageSpec as StageSpec
from .registry import register as register

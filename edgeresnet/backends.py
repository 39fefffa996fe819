"""How edgeresnet imports and quiets the vendor libraries (coremltools, OpenVINO, NNCF).

Both export (writing files) and quantization (training for a runtime) call these libraries,
and both need them imported the same way: without start-up probes, progress bars and
telemetry. This module sits below both, so that neither imports the other for it. The
vendor libraries are heavy and optional: each is imported inside the function that needs it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import cast

from .errors import require


def import_coremltools() -> ModuleType:
    """coremltools, imported without its TensorFlow probe and start-up chatter.

    On import coremltools tries ``import tensorflow`` to enable its TF converter; here
    TensorFlow is often installed (for TFLite), which costs ~6 s and a screen of CUDA
    logs for a frontend we never use. Hiding it for the duration of the import disables
    only coremltools' TF frontend. On Linux it also warns that it cannot load its
    macOS-only runtime, and that the torch version is newer than it was tested with.
    """
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    require(("coremltools",), "Core ML export", "coreml")
    hide_tf = "tensorflow" not in sys.modules
    if hide_tf:
        # None makes `import tensorflow` raise ImportError (typeshed types sys.modules without it).
        sys.modules["tensorflow"] = cast(ModuleType, None)
    try:
        with converter_quiet():
            import coremltools
    finally:
        if hide_tf and sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
    return coremltools


@contextlib.contextmanager
def converter_quiet() -> Iterator[None]:
    """Silence coremltools' progress bars (stderr), warnings and info logs; errors still raise."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with (
            contextlib.redirect_stderr(io.StringIO()),
            contextlib.redirect_stdout(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def telemetry_declined() -> Iterator[None]:
    """OpenVINO's converter and NNCF send usage telemetry unless they believe they run in CI.

    We never use the network, so we tell them they are (both check CI=true and then send
    nothing). Only for the duration of the call.
    """
    previous = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = previous

"""Export a Model to deployable files, each verified against PyTorch and described by a manifest.

`export` (write.py) sequences what every runtime shares; each runtime has its folder
(onnx/, tflite/, openvino/, coreml/, tensorrt/) with an Exporter (exporter.py says what one
does) registered by runtime name in registry.py; `targets.py` names what `--target`
accepts; verify.py holds the agreement checks, sources.py which model each file comes from.
Names are imported on first use (_lazy.py), so that reading the target table (`edgeresnet
targets`, a typo in --target) loads neither torch nor a converter.
"""

from ._lazy import __all__ as __all__
from ._lazy import __getattr__ as __getattr__

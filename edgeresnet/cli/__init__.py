"""The `edgeresnet` command, one module per command group, each a thin layer over a public function:

- app.py: the group, and how every error becomes one line and an exit code
- options.py: the flags, the same in every command; output.py: stdout, stderr, JSON
- compress.py: export and compress (``edgeresnet.compress``)
- prune.py: prune and sensitivity; evaluate.py: inspect and evaluate
- bench.py: bench and report (``edgeresnet.bench``, ``edgeresnet.report``; no torch)
- catalog.py: models, targets, recipes
"""

from .app import main as main

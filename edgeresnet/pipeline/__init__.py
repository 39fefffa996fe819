"""What runs the stages in order and writes a run: the layer above stages and export.

- run.py: compress on a Model, stage by stage, then export, evaluation and the run report
- stage_runner.py: one stage of a run, saved and resumable
- prune_run.py: what `edgeresnet prune` writes and prints
"""

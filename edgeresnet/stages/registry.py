"""The stages a recipe may name, in one table: each stage's settings, its function, whether it
trains, and where it runs in a recipe's order.

Recipes (edgeresnet/recipes/) read stage names, settings classes and order rules from
``STAGES`` alone, so that a new stage is its module in edgeresnet/stages/ and one
``register(...)`` call below. The settings class and the function are import paths,
resolved on first use: the stage modules import torch, and reading or checking a recipe
(``edgeresnet recipes show``, the CLI's fast error paths) must not.

Order: stages run in ascending ``rank``. Two stages of one rank do the same job (ptq and qat
both set the int8 ranges), so a recipe has at most one of them: each such stage says, in
``excludes``, why it cannot be combined with the stage registered before it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Exclusion:
    """Why two stages of one rank cannot both be in a recipe, and which to keep."""

    message: str
    hint: str


@dataclass(frozen=True)
class StageSpec:
    name: str  # as a recipe writes it: `- qat:`
    config_path: str  # "module:Class" of the stage's settings, a pydantic model
    function_path: str  # "module:function" of the stage's public function
    trains: bool  # whether it trains (needs training images; checkpoints, resumes per epoch)
    rank: int  # stages run in ascending rank
    # What the stage's work is called where a later stage explains why it must come after it:
    # "qat fits quantization to the weights pruning would change".
    doing: str
    # Why this stage runs after the stages of lower rank; "{before}" is the earlier stage's `doing`.
    # None for a stage that nothing precedes.
    runs_after: str | None = None
    # The registered stages of this one's rank it cannot be combined with, and why.
    excludes: Mapping[str, Exclusion] = field(default_factory=dict)
    # Settings that name an export target, as paths into the config: a recipe checks that the
    # target exists when it is read, as it does its `targets`, not when the stage runs.
    target_settings: tuple[tuple[str, ...], ...] = ()

    def config_class(self) -> type[BaseModel]:
        return _resolve(self.config_path)

    def function(self) -> Callable[..., Any]:
        return _resolve(self.function_path)

    def why_after(self, before: StageSpec) -> str:
        """Why ``before`` must run before this stage."""
        return (self.runs_after or "").format(before=before.doing)


STAGES: dict[str, StageSpec] = {}  # by name, in registration order (the order messages list them in)


def register(spec: StageSpec) -> StageSpec:
    """Add a stage to ``STAGES``; a name registered already, or an order rule that does not fit
    the stages registered so far, is refused."""
    if spec.name in STAGES:
        raise ValueError(
            f"stage {spec.name!r} is registered already (by {STAGES[spec.name].function_path}); "
            "give the new stage a name of its own"
        )
    for path in (spec.config_path, spec.function_path):
        module, colon, attribute = path.partition(":")
        if not (module and colon and attribute):
            raise ValueError(f"stage {spec.name!r}: {path!r} is not an import path such as 'package.module:name'")
    same_rank = {name for name, other in STAGES.items() if other.rank == spec.rank}
    if same_rank != set(spec.excludes):
        raise ValueError(
            f"stage {spec.name!r} has rank {spec.rank}, shared with {sorted(same_rank) or 'no stage'}: "
            f"its `excludes` must say why it cannot be combined with exactly those, got {sorted(spec.excludes)}"
        )
    if spec.runs_after is None and any(other.rank < spec.rank for other in STAGES.values()):
        raise ValueError(f"stage {spec.name!r} runs after other stages: say why in `runs_after`")
    STAGES[spec.name] = spec
    return spec


def exclusion(first: str, second: str) -> Exclusion | None:
    """Why stages ``first`` and ``second`` cannot both be in a recipe; None if they can."""
    return STAGES[first].excludes.get(second) or STAGES[second].excludes.get(first)


def config_classes() -> dict[str, type[BaseModel]]:
    """Each stage's settings class, by name (this imports the stage modules, and so torch)."""
    return {name: spec.config_class() for name, spec in STAGES.items()}


def _resolve(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


_QUANTIZATION_AFTER = "{stage} fits quantization to the weights {{before}} would change"

register(
    StageSpec(
        name="prune",
        config_path="edgeresnet.stages.prune:PruneConfig",
        function_path="edgeresnet.stages.prune:prune",
        trains=False,
        rank=0,
        doing="pruning",
        target_settings=(("latency", "target"),),  # the artifact whose latency a latency target measures
    )
)
register(
    StageSpec(
        name="distill",
        config_path="edgeresnet.stages.distill:DistillConfig",
        function_path="edgeresnet.stages.distill:distill",
        trains=True,
        rank=1,
        doing="distillation",
        runs_after="distill recovers the accuracy pruning costs, so it must train the pruned model",
    )
)
register(
    StageSpec(
        name="ptq",
        config_path="edgeresnet.stages.ptq:PtqConfig",
        function_path="edgeresnet.stages.ptq:ptq",
        trains=False,
        rank=2,
        doing="post-training quantization",
        runs_after=_QUANTIZATION_AFTER.format(stage="ptq"),
    )
)
register(
    StageSpec(
        name="qat",
        config_path="edgeresnet.stages.qat:QatConfig",
        function_path="edgeresnet.stages.qat:qat",
        trains=True,
        rank=2,
        doing="quantization-aware training",
        runs_after=_QUANTIZATION_AFTER.format(stage="qat"),
        excludes={
            "ptq": Exclusion(
                "stages 'ptq' and 'qat' both set the int8 ranges: ptq from calibration images, qat by training",
                "keep qat for the best int8 accuracy, or ptq to skip training",
            )
        },
    )
)

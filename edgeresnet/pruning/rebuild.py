"""A pruned architecture rebuilt from its channel plan, ready for its weights."""

from __future__ import annotations

from torch import nn

from ..errors import ArchitectureError
from ..models.plan import ChannelPlan
from .structure import analyse, first_channels
from .surgery import cut


def rebuild(plan: ChannelPlan) -> nn.Module:
    """The pruned architecture with fresh weights, ready for ``load_state_dict``."""
    module = plan.base_spec().build()
    structure = analyse(module)
    unknown = sorted(set(plan.widths) - set(structure.spaces))
    if unknown:
        raise ArchitectureError(
            f"the channel plan names spaces {unknown[:3]} that {plan.name} does not have",
            "the plan was made for another architecture",
        )
    keep = {name: first_channels(structure.spaces[name], width) for name, width in plan.widths.items()}
    module = cut(module, structure, keep, plan.removed_blocks)
    for name, (before, after) in plan.pads.items():
        pad = module.get_submodule(name)
        pad.before, pad.after = before, after
    return module

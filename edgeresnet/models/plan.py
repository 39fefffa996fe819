"""A pruned ResNet, described: the architecture it was cut from plus the width of every space.

The plan is what makes a pruned model's weights loadable: ``pruning.rebuild`` makes the
base architecture, cuts each space to its planned width, drops the removed blocks and
sets the zero-padding offsets, and the weights then load strictly. The plan itself is
only a description, so the model layer needs nothing of pruning. It is stored as JSON
beside the weights and inside the .safetensors header (``edgeresnet.save``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ArchitectureError

FORMAT = "edgeresnet.channel-plan/1"
METADATA_KEY = "edgeresnet.channel_plan"  # in a .safetensors header
PLAN_NAME = "channel-plan.json"


class ChannelPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    format: str = FORMAT
    base: dict[str, Any]  # the ArchSpec fields of the unpruned architecture
    widths: dict[str, int]  # space -> channels kept (see pruning.structure)
    pads: dict[str, tuple[int, int]] = {}  # zero-padding shortcut -> (before, after)
    removed_blocks: tuple[str, ...] = ()
    info: dict[str, Any] = {}  # how it was made: criterion, target, MACs before and after

    @property
    def name(self) -> str:
        return self.base.get("name") or "resnet"

    @property
    def summary(self) -> str:
        factor = self.info.get("macs_factor")
        return f"{factor:.2f}x fewer MACs" if factor else f"{len(self.widths)} spaces cut"

    def base_spec(self):
        from .spec import ArchSpec

        if "module" in self.base:  # a module no layout describes: only its own class can be cut again
            raise ArchitectureError(
                f"the channel plan was made for a {self.base['module']}, which edgeresnet cannot rebuild from weights",
                "keep the pruned nn.Module in memory, or save it as a torch.export .pt2 file",
            )
        return ArchSpec.from_json(self.base)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str = "channel plan") -> ChannelPlan:
        try:
            plan = cls.model_validate(json.loads(text))
        except (ValueError, ValidationError) as error:
            raise ArchitectureError(
                f"{origin} is not a valid channel plan ({str(error).splitlines()[0]})",
                "use the channel-plan.json that `edgeresnet prune` wrote",
            ) from None
        if plan.format != FORMAT:
            raise ArchitectureError(f"{origin} has format {plan.format!r}, this version reads {FORMAT!r}")
        return plan

    @classmethod
    def read(cls, path: str | Path) -> ChannelPlan:
        path = Path(path)
        if not path.is_file():
            raise ArchitectureError(f"channel plan not found: {path}", "check the path")
        return cls.from_json(path.read_text(), str(path))

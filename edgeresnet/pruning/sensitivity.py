"""Sensitivity analysis: top-1 when one layer alone is pruned, at several ratios (Li et al. 2017).

Each segment (a block's inner channels, a stage's residual channels) is cut on its own,
the rest of the network untouched, and evaluated. Layers whose accuracy holds up can be
pruned harder; the table and the plot say which.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..data import ImageDataset
from ..errors import DataError, require
from ..evaluate import evaluate
from ..models.model import Model
from .importance import Criterion, channel_scores, unit_scores
from .select import allowed_counts, choose, nearest
from .structure import prunable
from .surgery import cut


class SensitivityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    importance: Criterion = "l1"
    round_to: int = Field(default=8, ge=1)
    images: int = Field(default=1000, ge=1)  # a seeded subset of the data, per evaluation
    seed: int = 0
    threads: int = Field(default=2, ge=1)

    @field_validator("ratios")
    @classmethod
    def _fractions(cls, ratios: tuple[float, ...]) -> tuple[float, ...]:
        if not ratios or any(not 0 < r < 1 for r in ratios):
            raise ValueError(f"ratios must lie strictly between 0 and 1, got {list(ratios)}")
        return tuple(sorted(ratios))


class LayerSensitivity(BaseModel):
    layer: str
    channels: int
    kept: list[int]  # channels kept at each ratio, after rounding
    top1: list[float]


class SensitivityReport(BaseModel):
    arch: str
    importance: str
    ratios: list[float]
    images: int
    baseline_top1: float
    layers: list[LayerSensitivity]


def sensitivity(model: Model, data: ImageDataset, config: SensitivityConfig = SensitivityConfig()) -> SensitivityReport:
    """Top-1 of ``model`` with each prunable segment alone cut at each of ``config.ratios``.

    Args:
        model: the model to analyse (a Model: ``load_model``'s); it is not changed.
        data: labelled images; a seeded subset of ``config.images`` of them is evaluated.
        config: the ratios, the importance criterion that picks the channels cut, the rounding
            of kept widths, the subset's size and seed, and the threads for evaluation.

    Returns a SensitivityReport: the unpruned top-1 and, per layer, the channels kept and the
    top-1 at each ratio.

    Example::

        model = edgeresnet.load_model("resnet20.th")
        report = edgeresnet.sensitivity(model, edgeresnet.open_dataset("cifar10/test.zip"))
        print(report.baseline_top1, [(layer.layer, layer.top1) for layer in report.layers])
    """
    module, structure = prunable(model)
    scores = unit_scores(structure, channel_scores(module, structure, config.importance))
    sample = data.subset(config.images, seed=config.seed)

    def top1(candidate) -> float:
        accuracy = evaluate(
            model.replace(module=candidate.eval()).predictor(config.threads), sample, model.preprocess, progress=None
        )
        if accuracy.top1 is None:  # the CLI checks for labels first; a caller from Python learns it here
            raise DataError("sensitivity measures top-1, which needs labelled data", "pass a data set with labels")
        return accuracy.top1

    full = {s.name: s.size for s in structure.segments}
    layers = []
    for segment in structure.segments:
        kept, accuracy = [], []
        for ratio in config.ratios:
            count = nearest(allowed_counts(segment, config.round_to), (1 - ratio) * segment.size)
            keep, removed = choose(structure, scores, {**full, segment.name: count})
            kept.append(count)
            accuracy.append(round(top1(cut(module, structure, keep, removed)), 2))
        layers.append(LayerSensitivity(layer=segment.name, channels=segment.size, kept=kept, top1=accuracy))
    return SensitivityReport(
        arch=model.arch,
        importance=config.importance,
        ratios=list(config.ratios),
        images=len(sample),
        baseline_top1=round(top1(module), 2),
        layers=layers,
    )


def markdown(report: SensitivityReport) -> str:
    head = "| layer | channels | " + " | ".join(f"ratio {r:g}" for r in report.ratios) + " |"
    lines = [
        f"Top-1 (%) on {report.images} images with one layer pruned ({report.importance} importance); "
        f"unpruned: {report.baseline_top1:.2f}",
        "",
        head,
        "|" + " --- |" * (len(report.ratios) + 2),
    ]
    for layer in report.layers:
        cells = [f"{acc:.2f} ({kept})" for acc, kept in zip(layer.top1, layer.kept)]
        lines.append(f"| {layer.layer} | {layer.channels} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nIn brackets: the channels kept after rounding.\n"


def plot(report: SensitivityReport, path: Path) -> Path:
    require(("matplotlib",), "the sensitivity plot", "report")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    colours = plt.get_cmap("tab20")  # twenty distinct colours: the default ten repeat on ResNet-20's twelve rows
    for index, layer in enumerate(report.layers):
        residual = "." not in layer.layer.split(" ")[0]
        axis.plot(
            [0, *report.ratios],
            [report.baseline_top1, *layer.top1],
            marker="o",
            label=layer.layer,
            color=colours(index % 20),
            linewidth=2.5 if residual else 1,
            linestyle="-" if residual else "--",
        )
    axis.set_xlabel("fraction of the layer's channels removed")
    axis.set_ylabel(f"top-1 (%) on {report.images} images")
    axis.set_title(f"{report.arch}: sensitivity of each layer to pruning ({report.importance})")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6, ncol=2, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

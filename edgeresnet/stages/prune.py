"""The prune stage: remove whole channels, to a ratio, a MACs factor or a measured latency.

    structure (which channels are tied)  ->  importance (a score per channel)
        ->  select (how many each segment keeps, which ones)  ->  surgery (a smaller dense copy)

The result is a Model whose ``plan`` records the widths, so that ``edgeresnet.save`` and
``edgeresnet.load`` round-trip it, and export and bench take it like any other model.
Recovering the accuracy pruning costs is the distill stage's job.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..data import ImageDataset, batches, sample_pixels
from ..errors import ArchitectureError, DataError, EdgeResNetError
from ..loading import as_model
from ..models.detect import detect
from ..models.model import Model
from ..models.plan import ChannelPlan
from ..models.spec import ArchSpec
from ..models.summary import count_macs, count_params, meta_copy
from ..pruning.importance import Criterion, block_scores, channel_scores, unit_scores
from ..pruning.search import fewest_blocks, fill_up, smallest_ratio, unreachable
from ..pruning.select import Scope, choose, keep_counts, kept_fraction, removable_blocks
from ..pruning.structure import Structure, prunable
from ..pruning.surgery import cut


class LatencyProbe(BaseModel):
    """How a latency target is measured: which artifact, on how many threads, how often."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    target: str = "tflite-int8"
    threads: int = Field(default=2, ge=1)
    runs: int = Field(default=200, ge=10)
    warmup: int = Field(default=20, ge=0)
    steps: int = Field(default=6, ge=1, le=20)  # bisection steps: each one exports and times a candidate
    rounds: int = Field(default=5, ge=1)  # alternating timing rounds where several files are compared


class PruneConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    # One target: the fraction of channels to remove, fewer MACs by this factor, or this p50 latency.
    ratio: float | None = Field(default=None, ge=0, le=1)
    macs: float | None = Field(default=None, ge=1)
    latency_ms: float | None = Field(default=None, gt=0)
    importance: Criterion = "taylor"  # data-driven; l1, l2 and bn need no data
    scope: Scope = "global"  # one threshold for the whole network, or the same ratio in every layer
    round_to: int = Field(default=8, ge=1)  # kept widths are multiples of this (int8 kernels work in blocks)
    # Depth first: whole identity-shortcut blocks go, least important first, until the target
    # is met; only then channels. Fewer layers cut the fixed cost per layer that dominates
    # small inputs on int8 kernels, which narrower layers do not (see benchmarks/README.md).
    remove_blocks: bool = False
    # What removing a block saves, to rank blocks by importance per saving: its MACs, or its
    # latency measured on `latency.target` (one export per stage; a latency target implies it).
    block_cost: Literal["macs", "latency"] = "macs"
    # Images whose statistics replace the batch norms' running ones after the cut (adaptive
    # batch norm, Li et al. 2020): without it the narrower layers see shifted activations and
    # the pruned model is near chance until fine-tuned. Needs data; 0 turns it off.
    recalibrate_images: int = Field(default=1024, ge=0)
    taylor_batches: int = Field(default=8, ge=1)
    batch_size: int = Field(default=64, ge=1)
    seed: int = 0
    latency: LatencyProbe = LatencyProbe()

    @model_validator(mode="after")
    def _one_target(self) -> PruneConfig:
        given = [name for name in ("ratio", "macs", "latency_ms") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one target of ratio, macs and latency_ms, got {given or 'none'}")
        return self


def prune(model: Model | str | Path | torch.nn.Module, config: PruneConfig, data: ImageDataset | None = None) -> Model:
    """A pruned copy of ``model`` (a Model, a path or an nn.Module); ``data`` (labelled images)
    feeds the taylor criterion and calibrates the artifacts a latency target is measured on.

    Args:
        model: the model to prune; it is not changed.
        config: one target (``ratio`` of channels removed, ``macs`` reduction factor, or
            ``latency_ms``), the importance criterion, scope, rounding and ``remove_blocks``.
        data: training images; needed by the taylor criterion (the default) and whatever
            measures latency, and they recalibrate the batch norms after the cut. None: only
            with importance l1, l2 or bn and a ratio or macs target.

    Example::

        model = edgeresnet.load_model("resnet56.th")
        pruned = edgeresnet.prune(model, edgeresnet.PruneConfig(macs=2.0), edgeresnet.open_dataset("train.zip"))
        edgeresnet.save(pruned, "pruned/")
    """
    model = as_model(model)
    module, structure = prunable(model)
    raw = channel_scores(module, structure, config.importance, _taylor_batches(model, config, data))
    scores = unit_scores(structure, raw)
    size = model.preprocess.input_size
    # Depth before width: the blocks that matter least go first, whole, then channels.
    order = []
    if config.remove_blocks:
        importance = block_scores(structure, raw)
        cost = _block_costs(model, module, structure, config, data)
        order = sorted(importance, key=lambda block: importance[block] / cost[block])

    def counts_at(ratio: float, removed: tuple[str, ...] = ()) -> dict[str, int]:
        return keep_counts(structure, scores, ratio, config.scope, config.round_to, removed)

    def cut_to(counts: dict[str, int], source: torch.nn.Module) -> torch.nn.Module:
        keep, removed = choose(structure, scores, counts)
        return cut(source, structure, keep, removed)

    minimum = counts_at(1.0, tuple(order))  # every block that may go gone, every segment at its narrowest
    base_macs = count_macs(module, size)
    probes: list[dict] = []

    def macs_factor(counts) -> float:
        return base_macs / count_macs(cut_to(counts, meta_copy(module)), size)

    def latency(counts) -> float:
        ms = _measure([model.replace(module=cut_to(counts, module).eval())], data, config.latency)[0]
        probes.append({"kept_fraction": round(kept_fraction(structure, counts), 4), "p50_ms": ms})
        return ms

    goal = _goal(config, structure, minimum, macs_factor, latency, data)
    if config.ratio is not None and not order:
        counts = counts_at(config.ratio)  # exact per layer (local) or by one threshold (global)
    else:
        # As many whole blocks as the target needs but one; channels make up the rest, so that
        # the last block does not overshoot the target by a block's worth.
        dropped = fewest_blocks(order, lambda blocks: goal(counts_at(0.0, blocks)))
        blocks = tuple(order) if dropped is None else dropped[:-1]
        steps = config.latency.steps if config.latency_ms is not None else 14
        if dropped and not goal(counts_at(1.0, blocks)):  # channels cannot stand in for that last block
            counts = counts_at(0.0, dropped)
        else:
            counts = smallest_ratio(lambda r: counts_at(r, blocks), goal, steps)
            if config.macs is not None:
                counts = fill_up(counts, structure, scores, config.round_to, goal)

    keep, removed = choose(structure, scores, counts)
    pruned = cut(module, structure, keep, removed).eval()
    if data is not None and config.recalibrate_images:
        _recalibrate_norms(pruned, model, data, config)
    macs = count_macs(pruned, size)
    info = {
        "importance": config.importance,
        "scope": config.scope,
        "round_to": config.round_to,
        "target": {
            k: v for k, v in config.model_dump(include={"ratio", "macs", "latency_ms"}).items() if v is not None
        },
        "kept_fraction": round(kept_fraction(structure, counts), 4),
        "removed_blocks": list(removed),
        **({"frozen": dict(structure.frozen)} if structure.frozen else {}),  # spaces kept whole, and why
        **({"block_cost": config.block_cost} if config.remove_blocks else {}),
        "macs_before": base_macs,
        "macs_after": macs,
        "macs_factor": round(base_macs / macs, 4),
        "params_before": count_params(module),
        "params_after": count_params(pruned),
        **({"latency": {"target": config.latency.target, "probes": probes}} if probes else {}),
    }
    plan = _plan(model, structure, keep, removed, pruned, info)
    return model.replace(module=pruned, plan=plan)


def _goal(config: PruneConfig, structure: Structure, minimum, macs_factor, latency, data):
    """The target as a test on keep counts; fails first, naming the best reachable value, when
    even ``minimum`` (the most pruning can do) does not pass it."""
    if config.ratio is not None:
        best = 1 - kept_fraction(structure, minimum)
        if config.ratio > best:
            raise unreachable(
                f"ratio {config.ratio}",
                f"ratio {best:.3f}",
                f"choose a ratio up to that; round_to={config.round_to} keeps at least that many channels per layer",
            )
        return lambda counts: 1 - kept_fraction(structure, counts) >= config.ratio - 1e-9
    if config.macs is not None:
        if macs_factor(minimum) < config.macs:
            raise unreachable(
                f"{config.macs}x fewer MACs",
                f"{macs_factor(minimum):.2f}x",
                "ask for at most that, or lower round_to, or allow remove_blocks",
            )
        return lambda counts: macs_factor(counts) >= config.macs
    if data is None:
        raise DataError("a latency target needs data to calibrate and verify the measured artifacts", "pass --data")
    fastest = latency(minimum)
    if fastest > config.latency_ms:
        raise unreachable(
            f"{config.latency_ms} ms on {config.latency.target}",
            f"{fastest:.3f} ms",
            "ask for at least that, or allow remove_blocks, or measure on another target",
        )
    return lambda counts: latency(counts) <= config.latency_ms


def _block_costs(model: Model, module, structure: Structure, config: PruneConfig, data) -> dict[str, float]:
    """Block -> what removing it saves, as a fraction of the whole model's MACs or latency.

    Blocks of one stage have the same shapes and so the same cost. Latency is measured once
    per stage with all its removable blocks gone, and shared among them: one block's saving
    (a few percent) is below the noise of a shared machine, a stage's is not.
    """
    blocks = removable_blocks(structure)
    by_latency = config.block_cost == "latency" or config.latency_ms is not None
    if by_latency and data is None:
        raise DataError("measuring what a block costs needs data to calibrate the probe artifacts", "pass --data")
    size = model.preprocess.input_size

    stages: dict[str, list[str]] = {}
    for block in blocks:
        stages.setdefault(block.split(".")[0], []).append(block)
    candidates = [(), *map(tuple, stages.values())]  # the whole model, then each stage without its blocks
    if by_latency:
        costs = _measure(
            [model.replace(module=cut(module, structure, {}, c).eval()) for c in candidates], data, config.latency
        )
    else:
        costs = [count_macs(cut(meta_copy(module), structure, {}, c), size) for c in candidates]
    whole = costs[0]
    per_block = {
        stage: max(whole - cost, 1e-3 * whole) / whole / len(members)
        for (stage, members), cost in zip(stages.items(), costs[1:])
    }
    return {block: per_block[block.split(".")[0]] for block in blocks}


def _plan(model: Model, structure: Structure, keep, removed, pruned, info) -> ChannelPlan:
    # As JSON holds it, so that a reloaded plan compares equal. A general layout comes from the
    # model's options: some of its fields (where a bottleneck strides) are not in the weights.
    base = (
        model.plan.base
        if model.plan
        else (
            ArchSpec.from_json(model.options).to_json() if "layout" in model.options else _detected_base(model.module)
        )
    )
    widths = {name: len(channels) for name, channels in keep.items() if structure.spaces[name].block not in removed}
    pads = {
        name: (pruned.get_submodule(name).before, pruned.get_submodule(name).after)
        for name in structure.pads
        if not any(name.startswith(b + ".") for b in removed)
    }
    earlier = model.plan.removed_blocks if model.plan else ()
    return ChannelPlan(
        base=base, widths=widths, pads=pads, removed_blocks=tuple(sorted({*earlier, *removed})), info=info
    )


def _detected_base(module: torch.nn.Module) -> dict:
    """The architecture the weights fit; a module no layout describes is named by its class
    (the plan records its widths, but only that class can be cut to them again)."""
    try:
        return detect(module.state_dict()).to_json()
    except ArchitectureError:
        return {"module": f"{type(module).__module__}.{type(module).__qualname__}"}


def _recalibrate_norms(module: torch.nn.Module, model: Model, data: ImageDataset, config: PruneConfig) -> None:
    """Re-estimate every batch norm's running mean and variance on the data, in place on the
    freshly cut copy (a cumulative average: momentum None); weights stay as they are."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    sample = data.subset(config.recalibrate_images, seed=config.seed)
    with torch.no_grad():
        for images, _ in batches(sample, model.preprocess, config.batch_size):
            module(torch.tensor(images))
    for norm in norms:
        norm.momentum = 0.1
    module.eval()


def _taylor_batches(model: Model, config: PruneConfig, data: ImageDataset | None):
    if config.importance != "taylor":
        return ()
    if data is None or len(data) == 0:
        raise DataError(
            "the taylor criterion needs labelled images", "pass --data, or choose --importance l1, l2 or bn"
        )
    if not data.labelled:
        raise DataError(
            f"the taylor criterion needs labelled images, and {data.source} has no labels",
            "pass labelled --train-data (root/<class>/<image>), or choose --importance l1, l2 or bn",
        )
    sample = data.subset(config.taylor_batches * config.batch_size, seed=config.seed)
    return ((torch.tensor(x), torch.tensor(y).long()) for x, y in batches(sample, model.preprocess, config.batch_size))


def _measure(models: list[Model], data: ImageDataset | None, probe: LatencyProbe) -> list[float]:
    """p50 latency in ms of each model exported to the probe's target, timed by the runner.

    The files are timed in alternating rounds and each gets the median of its rounds: on a
    shared machine a disturbance then hits all of them alike, not whichever ran during it.
    """
    import statistics

    from ..data import normalize
    from ..export import ExportConfig, export, parse_targets
    from ..runner.runtimes import open_artifact
    from ..runner.timing import measure_latency

    if data is None:  # prune() says so before any work; the probe cannot run without images either
        raise DataError("a latency target needs data to calibrate and verify the measured artifacts", "pass --data")
    target = parse_targets([probe.target])
    pixels = sample_pixels(data, models[0].preprocess, min(256, len(data)), seed=0)
    with tempfile.TemporaryDirectory(prefix="edgeresnet-probe-") as tmp:
        runs = []
        for index, model in enumerate(models):
            # Only its speed matters and it is thrown away: no bar on its agreement with PyTorch.
            artifact = export(
                model,
                target,
                Path(tmp) / str(index),
                samples=pixels[:16],
                calibration=pixels,
                threads=probe.threads,
                config=ExportConfig(min_agreement=0),
            )[0]
            if artifact.manifest.fidelity is None:
                raise EdgeResNetError(
                    f"{probe.target} does not run on this host, so its latency cannot be measured",
                    "measure on a tflite, openvino or onnx target",
                )
            runtime = open_artifact(artifact.path, probe.threads)
            runs.append((runtime, runtime.to_raw(normalize(pixels[:1], model.preprocess))))
        rounds = [
            [
                measure_latency(partial(runtime.invoke, raw), runs=probe.runs, warmup=probe.warmup).p50_ms
                for runtime, raw in runs
            ]
            for _ in range(probe.rounds)
        ]
    return [round(statistics.median(column), 4) for column in zip(*rounds)]

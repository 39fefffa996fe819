"""How compress runs one stage inside a run directory: evaluated, recorded, and resumable.

Each stage gets ``stages/NN-<name>/``. A stage that changes the float network (prune,
distill) saves its model there and writes ``metrics.json`` last: with that file present,
a resumed run loads the model instead of running the stage again. Training stages keep
``checkpoints/`` (one per finished epoch), from which an interrupted stage continues;
qat, whose simulator is rebuilt around its checkpoint, always takes that path.

Under torchrun every process runs the same stages in the same order; rank 0 decides
whether a stage is finished, runs the stages that do not train (prune) alone, and hands
its model to the others; distill and qat train on every process. Only rank 0 evaluates
and writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from pydantic import BaseModel

from .. import distributed
from ..data import ImageDataset
from ..errors import EdgeResNetError
from ..evaluate import Accuracy, evaluate
from ..export import Target
from ..loading import load_with_spec
from ..models.model import Model
from ..models.summary import count_macs, count_params
from ..run_report import StageRecord
from ..rundir import write_atomically
from ..saving import WEIGHTS_NAME, save
from ..stages.registry import STAGES
from ..training.config import Execution

IDENTITY_NAME = "run.json"
METRICS_NAME = "metrics.json"
PREDICTIONS_NAME = "predictions.npy"


@dataclass(frozen=True)
class Source:
    """A model a target can be exported from, and its top-1 per image of the evaluation data."""

    stage: str
    model: Model
    predictions: np.ndarray


def run_identity(
    model: Model, data: ImageDataset, train_data: ImageDataset | None, recipe, targets: list[Target], options: BaseModel
) -> dict:
    """What decides a run's result: a resumed run must have been started with the same."""
    return _as_json(
        {
            "model": model.fingerprint(),
            "data": data.fingerprint(),
            "train_data": train_data.fingerprint() if train_data is not None else None,
            # The accuracy guard judges the result, it does not change it: a resume may move it.
            "recipe": {k: v for k, v in recipe.to_dict().items() if k != "max_accuracy_drop"} if recipe else None,
            "targets": [t.name for t in targets],
            "options": options.model_dump(mode="json"),
        }
    )


def _as_json(value: dict) -> dict:
    return json.loads(json.dumps(value))  # tuples become lists, as they come back from run.json


class StageRunner:
    def __init__(
        self,
        run: Path,
        identity: dict | None,
        data: ImageDataset | None,
        threads: int,
        batch_size: int,
        log: Callable[[str], None],
        execution: Execution = Execution(),
    ):
        self.root = run / "stages"
        self.data, self.threads, self.batch_size, self.log = data, threads, batch_size, log
        self.execution = execution
        self.main = distributed.world().is_main  # the others only train, and write nothing
        self.records: list[StageRecord] = []
        self._chain: list[Source] = []  # the float models, input first
        self._qat: dict[str, Source] = {}  # per int8 scheme
        self._numbered = 1  # stage directories are numbered in order; the input model is 00
        if self.main and identity is not None:  # a follower has none: rank 0 checks it
            _check_identity(run / IDENTITY_NAME, identity)

    @classmethod
    def follower(cls, run: Path, execution: Execution) -> StageRunner:
        """For a process other than rank 0: it takes part in the training stages of the run rank 0 writes."""
        return cls(run, None, None, 0, 0, lambda message: None, execution)

    @staticmethod
    def has_progress(run: Path) -> bool:
        """Whether an interrupted run left anything a resume would reuse."""
        stages = run / "stages"
        return stages.is_dir() and any(p.name == METRICS_NAME or p.suffix == ".pt" for p in stages.rglob("*"))

    def record_input(self, model: Model) -> Accuracy:
        start = time.perf_counter()
        accuracy = self._evaluate(model, "PyTorch FP32")
        self._chain.append(Source("input", model, accuracy.predictions))
        self.records.append(_record("input", model, accuracy, time.perf_counter() - start))
        return accuracy

    def run(
        self, name: str, config, current: Model, *, teacher: Model, train: ImageDataset | None, schemes: list[str]
    ) -> Model:
        """Run stage ``name``; returns the float model the next stage takes.

        qat trains once per int8 runtime, distill learns from the input model; every other stage
        (prune, or one a new module registers in STAGES) maps the float model to a float model as
        ``function(model, config, data=train)``, and its result is saved and resumed alike."""
        spec = STAGES.get(name)
        if spec is None:
            raise EdgeResNetError(f"unknown stage {name!r}", f"use {', '.join(STAGES)}")
        if name == "qat":
            assert train is not None, "plan.check_plan refuses a recipe that trains without training images"
            for scheme in schemes:
                self._trained_qat(scheme, config, current, teacher, train)
            return current
        function = spec.function()
        if name == "distill":
            return self._saved(
                name,
                current,
                lambda directory: function(
                    current,
                    teacher,
                    config,
                    train,
                    checkpoint_dir=directory / "checkpoints",
                    log=self.log,
                    execution=self.execution,
                ),
                trains=True,
            )
        return self._saved(
            name, current, lambda directory: (function(current, config, data=train), []), trains=spec.trains
        )

    def sources(self, targets: list[Target]) -> dict[Target, Source]:
        """Each target's model: the QAT model of its runtime where one was trained, else the last float model."""
        return {t: self._qat.get(t.qat_scheme or "", self._chain[-1]) for t in targets}

    def _directory(self, name: str) -> Path:
        directory = self.root / f"{self._numbered:02d}-{name}"
        if self.main:
            directory.mkdir(parents=True, exist_ok=True)
        self._numbered += 1
        return directory

    def _saved(self, name: str, before: Model, produce, trains: bool) -> Model:
        """A stage whose float model is saved: loaded from a finished run, else produced and saved.
        Under torchrun a training stage runs on every process, another on rank 0 alone; either
        way every process continues with rank 0's model."""
        directory = self._directory(name)
        finished = distributed.share(lambda: (directory / METRICS_NAME).exists())
        start = time.perf_counter()
        produced = produce(directory) if not finished and (trains or self.main) else None
        model = self._kept(name, before, directory, produced, start) if self.main else None
        shared = cast(Model, distributed.share(lambda: model))  # rank 0's, on every process
        return shared

    def _kept(self, name: str, before: Model, directory: Path, produced, start: float) -> Model:
        """Rank 0's side of a saved stage: the model loaded, or the one produced evaluated and saved."""
        metrics = directory / METRICS_NAME
        if produced is None:
            module, spec = load_with_spec(directory / WEIGHTS_NAME)
            model = before.replace(module=module, plan=spec.plan if spec is not None else None)
            record = StageRecord(**json.loads(metrics.read_text()))
            self.log(f"{name}: finished in the interrupted run; loaded from {directory}")
            predictions = np.load(directory / PREDICTIONS_NAME)
        else:
            model, history = produced
            accuracy = self._evaluate(model, f"{name} top-1")
            record = _record(name, model, accuracy, time.perf_counter() - start, history)
            predictions = accuracy.predictions
            save(model, directory)
            np.save(directory / PREDICTIONS_NAME, predictions)
            write_atomically(metrics, record.model_dump_json(indent=2) + "\n")  # last: it marks the stage finished
        self._chain.append(Source(name, model, predictions))
        self.records.append(record)
        return model

    def _trained_qat(self, scheme: str, config, current: Model, teacher: Model, train: ImageDataset) -> None:
        from ..stages.qat import Scheme as QatScheme
        from ..stages.qat import qat

        name = f"qat-{scheme}"
        directory = self._directory(name)
        start = time.perf_counter()
        model, history = qat(
            current,
            config,
            train,
            scheme=cast(QatScheme, scheme),
            teacher=teacher,
            checkpoint_dir=directory / "checkpoints",
            log=self.log,
            execution=self.execution,
        )
        if not self.main:
            return
        accuracy = self._evaluate(model, f"{name} top-1 (simulated int8)")
        metrics = directory / METRICS_NAME
        seconds = time.perf_counter() - start
        if metrics.exists():  # resumed: the training time is the interrupted run's
            seconds = StageRecord(**json.loads(metrics.read_text())).seconds
        record = _record(name, model, accuracy, seconds, history)
        write_atomically(metrics, record.model_dump_json(indent=2) + "\n")
        self._qat[scheme] = Source(name, model, accuracy.predictions)
        self.records.append(record)

    def _evaluate(self, model: Model, description: str) -> Accuracy:
        assert self.data is not None, "only rank 0 evaluates, and it has the data"
        return evaluate(
            model.predictor(self.threads), self.data, model.preprocess, batch_size=self.batch_size, progress=description
        )


def _record(name: str, model: Model, accuracy: Accuracy, seconds: float, history=()) -> StageRecord:
    float_module = model.float_view().module  # a QAT simulator's MACs are its float network's
    return StageRecord(
        stage=name,
        top1=accuracy.top1,
        top5=accuracy.top5,
        macs=count_macs(float_module, model.preprocess.input_size),
        params=count_params(float_module),
        size_bytes=sum(t.numel() * t.element_size() for t in float_module.state_dict().values()),
        seconds=round(seconds, 1),
        epochs=[vars(record) for record in history],
    )


def _check_identity(path: Path, identity: dict) -> None:
    if not path.exists():
        write_atomically(path, json.dumps(identity, indent=2) + "\n")
        return
    started = json.loads(path.read_text())
    for key, value in identity.items():
        if started.get(key) != value:
            raise EdgeResNetError(
                f"the interrupted run in {path.parent} was started with a different {key.replace('_', ' ')}",
                "rerun with the settings it was started with, or without --resume to start over",
            )

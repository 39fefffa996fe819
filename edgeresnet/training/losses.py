"""Distillation losses: the teacher's softened outputs (Hinton et al. 2015) and its stage
outputs (FitNets, Romero et al. 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import EdgeResNetError

# The residual stages of the zoo's ResNets: layer1-3 in CIFAR nets, layer1-4 in ImageNet nets.
STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(s, labels).

    The T^2 keeps the soft term's gradients the same size whatever the temperature (they
    shrink as 1/T^2 otherwise), so alpha weighs the two terms alike at every T. With alpha 1
    the labels are not read (unlabelled images carry -1).
    """
    student_logits, teacher_logits = student_logits.float(), teacher_logits.float()  # bf16 training
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    if alpha >= 1:
        return soft * temperature**2
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft * temperature**2 + (1 - alpha) * hard


def distillation_objective(teacher: nn.Module, alpha: float, temperature: float, extra=None):
    """fit()'s loss function: ``kd_loss`` against ``teacher``'s logits on the same batch, plus
    ``extra()`` when given (a feature term); returns (loss, student logits)."""

    def loss_fn(net: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        logits = net(inputs)
        loss = kd_loss(logits, teacher_logits, labels, alpha, temperature)
        return (loss if extra is None else loss + extra()), logits

    return loss_fn


class FeatureDistiller(nn.Module):
    """The mean over stages of MSE(adapter(student stage output), teacher stage output).

    Forward hooks on both networks' stages keep their latest outputs, so ``loss()`` is
    valid after one forward of each on the same batch. A pruned student's stages are
    narrower than the teacher's: a learned 1x1 conv per stage maps its width to the
    teacher's. The adapters train with the student and are thrown away after; call
    ``remove()`` to take the hooks off.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, input_size: int, seed: int = 0):
        super().__init__()
        self.stages = [name for name in STAGE_NAMES if hasattr(teacher, name)]
        if not self.stages or any(not hasattr(student, name) for name in self.stages):
            raise EdgeResNetError(
                "feature distillation needs a student and a teacher of the zoo's ResNets, with the same "
                f"stages (teacher: {self.stages or 'none'})",
                "set feature_weight to 0, or load both models with edgeresnet.load_model",
            )
        self._student: dict[str, torch.Tensor] = {}
        self._teacher: dict[str, torch.Tensor] = {}
        self._hooks = [
            getattr(net, name).register_forward_hook(_keeper(store, name))
            for net, store in ((student, self._student), (teacher, self._teacher))
            for name in self.stages
        ]
        student_widths, teacher_widths = self._probe(student, teacher, input_size)
        # Seeded apart from the global RNG: the same config builds the same adapters.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.adapters = nn.ModuleList(
                nn.Conv2d(student_widths[name], teacher_widths[name], 1) for name in self.stages
            )

    def _probe(self, student: nn.Module, teacher: nn.Module, input_size: int):
        """Each stage's width in both networks, from one forward of a blank image."""
        x = torch.zeros(1, 3, input_size, input_size)
        for net in (student, teacher):
            modes = [(m, m.training) for m in net.modules()]
            net.eval()  # no batch-norm statistics from a blank image
            try:
                with torch.no_grad():
                    net(x)
            finally:
                for m, training in modes:
                    m.training = training
        for name in self.stages:
            if self._student[name].shape[2:] != self._teacher[name].shape[2:]:
                raise EdgeResNetError(
                    f"the student's {name} outputs {tuple(self._student[name].shape[2:])} pixels and the "
                    f"teacher's {tuple(self._teacher[name].shape[2:])}",
                    "distil between models of the same architecture (a pruned copy of the teacher), "
                    "or set feature_weight to 0",
                )
        widths = [{name: store[name].shape[1] for name in self.stages} for store in (self._student, self._teacher)]
        self._student.clear()
        self._teacher.clear()
        return widths

    def loss(self) -> torch.Tensor:
        terms = [
            F.mse_loss(adapter(self._student[name]), self._teacher[name].detach())
            for name, adapter in zip(self.stages, self.adapters)
        ]
        return torch.stack(terms).mean()

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._student.clear()
        self._teacher.clear()


def _keeper(store: dict[str, torch.Tensor], name: str):
    def keep(module: nn.Module, inputs, output: torch.Tensor) -> None:
        store[name] = output

    return keep

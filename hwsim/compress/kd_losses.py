"""Distillation losses: Hinton soft targets, FitNets hints, attention transfer, FSP matrices, and the
bounded regression loss of Chen et al. (2017), plus a hook-based matcher of teacher/student feature maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwsim.compress.capture import forward_with_hooks


def hinton_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
                temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """(1 - alpha) CE(labels) + alpha T^2 KL(p_teacher^T || p_student^T) (Hinton et al. 2015, sec. 2)."""
    soft = F.kl_div(F.log_softmax(logits / temperature, dim=1), F.softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(logits, labels) + alpha * temperature ** 2 * soft


def attention_map(features: torch.Tensor, *, p: int = 2) -> torch.Tensor:
    """Spatial attention: mean over channels of |F|^p, flattened and L2-normalized (Zagoruyko & Komodakis 2017)."""
    return F.normalize(features.abs().pow(p).mean(dim=1).flatten(1), dim=1)


def attention_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance of the normalized attention maps, summed over positions, averaged over the batch.

    The paper's code averages over positions too, with beta = 1000 for 32x32 maps; summing makes one beta
    (1000 / 1024 ~ 1) fit every map size.
    """
    return (attention_map(student_features) - attention_map(teacher_features)).pow(2).sum(dim=1).mean()


def fsp_matrix(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """G[i, j] = sum_{h,w} F1[i,h,w] F2[j,h,w] / (h w) per sample (Yim et al. 2017, eq. (1))."""
    if first.shape[2:] != second.shape[2:]:
        second = F.adaptive_avg_pool2d(second, first.shape[2:])
    return torch.einsum("bihw,bjhw->bij", first, second) / (first.shape[2] * first.shape[3])


def bounded_regression_loss(student_boxes: torch.Tensor, teacher_boxes: torch.Tensor, targets: torch.Tensor, *,
                            margin: float = 0.0) -> torch.Tensor:
    """Chen et al. 2017, eq. (4): ||R_s - y||^2 where it exceeds ||R_t - y||^2 - margin, else 0 (batch mean)."""
    student_err = (student_boxes - targets).pow(2).sum(dim=1)
    teacher_err = (teacher_boxes - targets).pow(2).sum(dim=1)
    return torch.where(student_err + margin > teacher_err, student_err, torch.zeros_like(student_err)).mean()


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(p, m) for p, m in model.named_modules() if not list(m.children()) and p]


def feature_points(model: nn.Module, sample: torch.Tensor) -> dict[tuple[int, int], list[tuple[str, int]]]:
    """For each spatial size (H, W): the leaf modules producing 4-D outputs there, as (path, channels), in order."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    forward_with_hooks(model, sample, [m.register_forward_hook(
        lambda mod, inp, out, path=p: seen.append((path, tuple(out.shape)))) for p, m in _leaf_modules(model)])
    points: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for path, shape in seen:
        if len(shape) == 4 and path not in [p for pts in points.values() for p, _ in pts]:
            points.setdefault(shape[2:], []).append((path, shape[1]))
    return points


class FeatureMatcher:
    """Hooks matched student/teacher feature maps and computes hint, attention and FSP losses from them.

    Points are matched by spatial size (sizes present in both nets). ``mode`` picks which points are used:
    fitnets -> the middle matched size (last module there); attention -> every matched size (last module);
    fsp -> every matched size with >= 2 modules (first and last). Student maps go through 1x1 adapters to
    teacher channels (hints and FSP).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, sample: torch.Tensor, *, mode: str):
        s_points, t_points = feature_points(student, sample), feature_points(teacher, sample)
        sizes = [size for size in s_points if size in t_points]
        if mode == "fsp":
            sizes = [z for z in sizes if len(s_points[z]) > 1 and len(t_points[z]) > 1]
        if not sizes:
            raise ValueError(f"no feature maps of matching spatial size for {mode} distillation")
        if mode == "fitnets":
            sizes = [sizes[len(sizes) // 2]]
        ends = (0, -1) if mode == "fsp" else (-1,)
        self.pairs = [(s_points[z][e], t_points[z][e]) for z in sizes for e in ends]
        self.adapters = nn.ModuleList(nn.Conv2d(sc, tc, 1) for (_, sc), (_, tc) in self.pairs)
        self.student_maps: dict[str, torch.Tensor] = {}
        self.teacher_maps: dict[str, torch.Tensor] = {}
        self._handles = []
        for (s_path, _), (t_path, _) in self.pairs:
            for model, store, path in ((student, self.student_maps, s_path), (teacher, self.teacher_maps, t_path)):
                self._handles.append(model.get_submodule(path).register_forward_hook(self._keep(store, path)))

    @staticmethod
    def _keep(store: dict, path: str):
        def hook(module, inputs, output):
            store[path] = output.clone()     # clone: a later in-place ReLU must not change the stored map
        return hook

    def clear(self) -> None:
        self.student_maps.clear()
        self.teacher_maps.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _maps(self):
        for adapter, ((s_path, _), (t_path, _)) in zip(self.adapters, self.pairs):
            yield adapter, self.student_maps[s_path], self.teacher_maps[t_path].detach()

    def hint_loss(self) -> torch.Tensor:
        """FitNets: 0.5 * mean squared error between the adapted student map and the teacher hint."""
        return sum(0.5 * F.mse_loss(adapter(s), t) for adapter, s, t in self._maps())

    def attention_loss(self) -> torch.Tensor:
        return sum(attention_loss(s, t) for _, s, t in self._maps())

    def fsp_loss(self) -> torch.Tensor:
        """Mean squared distance of FSP matrices between the first and last map of each matched size."""
        maps = list(self._maps())
        total = 0.0
        for (a_first, s_first, t_first), (a_last, s_last, t_last) in zip(maps[0::2], maps[1::2]):
            student = fsp_matrix(a_first(s_first), a_last(s_last))
            total = total + (student - fsp_matrix(t_first, t_last)).pow(2).mean()
        return total

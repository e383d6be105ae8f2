"""Distillation: students, each KD loss on digits against the same student without a teacher, the recipe
step that replaces the model, and Chen et al.'s detection KD on the toy task.

Measured (seed 2, teacher digits_cnn width 16, 6 epochs; student width 0.25, 2.7k params, 6 epochs;
``python -m pytest tests/test_distill.py -q -s``): see the printed lines; the asserts use the stated floors.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwsim.compress import distill
from hwsim.compress.registry import get_method


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    from hwsim.data import load_digits_tensors

    return load_digits_tensors(0)


@pytest.fixture(scope="module")
def teacher(digits):
    from hwsim import zoo

    torch.set_num_threads(1)
    model = zoo.create("digits_cnn", seed=0, width=16).train()
    result = distill.fit(model, digits, loss="ce", epochs=6, seed=0)
    assert result.accuracy >= 0.97, result
    return model.eval()


@pytest.fixture(scope="module")
def baseline(teacher, digits):
    torch.manual_seed(2)
    return distill.fit(distill.make_student(teacher, width=0.25), digits, loss="ce", epochs=6, seed=2).accuracy


def test_make_student_is_thinner_and_runs(teacher):
    student = distill.make_student(teacher, width=0.5)
    convs = [m for m in student.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in student.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 8), (8, 16), (16, 32)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(32 * 4, 32), (32, 10)]   # 64 ch x 2x2 after two pools -> 32 x 2x2
    assert student(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_make_student_depth_drops_shape_preserving_blocks():
    block = lambda: nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())  # noqa: E731
    teacher = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), block(), block(), block(), nn.Flatten(),
                            nn.Linear(8 * 64, 10))
    student = distill.make_student(teacher, width=1.0, depth=1)
    assert sum(isinstance(m, nn.Conv2d) for m in student.modules()) == 2
    assert student(torch.randn(1, 1, 8, 8)).shape == (1, 10)


# (loss, accuracy floor, allowed shortfall against the CE-only student; measured numbers printed with -s)
KD_CASES = [("hinton", 0.9, 0.05), ("fitnets", 0.9, 0.05), ("attention", 0.9, 0.05), ("fsp", 0.9, 0.05)]


@pytest.mark.parametrize("loss, floor, margin", KD_CASES)
def test_kd_loss_trains_student_on_digits(loss, floor, margin, teacher, baseline, digits):
    torch.manual_seed(2)
    student = distill.make_student(teacher, width=0.25)
    result = distill.fit(student, digits, teacher=teacher, loss=loss, epochs=6, seed=2)
    print(f"\n{loss}: student with teacher {result.accuracy:.4f}, without {baseline:.4f}")
    assert result.accuracy >= floor
    assert result.accuracy >= baseline - margin


def test_hinton_loss_is_ce_at_alpha_zero_and_zero_kl_on_equal_logits():
    logits, labels = torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    ce = nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(distill.kl.hinton_loss(logits, torch.randn(4, 10), labels, alpha=0.0), ce)
    assert float(distill.kl.hinton_loss(logits, logits, labels, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)


def test_fsp_matrix_hand_computed():
    first = torch.arange(8.0).reshape(1, 2, 2, 2)       # channels [0,1,2,3], [4,5,6,7]
    second = torch.ones(1, 1, 2, 2)
    # G[i, 0] = mean over positions of F1[i]: 1.5 and 5.5 (Yim et al. 2017, eq. (1))
    torch.testing.assert_close(distill.kl.fsp_matrix(first, second), torch.tensor([[[1.5], [5.5]]]))


def test_distill_recipe_step_returns_trained_student(teacher, digits):
    report = get_method("distill").fn(teacher, [], width=0.5, epochs=2, data=digits, seed=0)
    metrics = dict(report.metrics)
    assert isinstance(report.new_model, nn.Module) and report.new_model is not teacher
    assert metrics["student_params"] < metrics["teacher_params"] / 3
    assert metrics["accuracy"] > 0.8
    conv = next(m for m in report.new_model.modules() if isinstance(m, nn.Conv2d))
    assert conv.hwsim_meta["compression"] == ["distill(hinton,thin,w=0.5)"]


def test_distill_into_zoo_compact_student_without_training():
    from hwsim import zoo

    resnet = zoo.create("resnet18", device="meta")
    report = get_method("distill").fn(resnet, [], student="mobilenet_v2", width_mult=0.5, epochs=0)
    assert type(report.new_model).__name__ == "MobileNetV2"
    assert dict(report.metrics)["student_params"] < 0.2 * dict(report.metrics)["teacher_params"]


def test_detection_kd_improves_box_quality():
    from hwsim.compress import detection_kd as det

    data = det.toy_detection_data(seed=0)
    torch.manual_seed(0)
    teacher = det.TinyDetector(width=16)
    teacher_result = det.fit_detector(teacher, data, epochs=8)
    torch.manual_seed(1)
    alone = det.fit_detector(det.TinyDetector(width=2), data, epochs=6, seed=1)
    torch.manual_seed(1)
    taught = det.fit_detector(det.TinyDetector(width=2), data, teacher=teacher, epochs=6, seed=1)
    print(f"\ndetection: teacher {teacher_result}, student alone {alone}, with KD {taught}")
    assert teacher_result.accuracy > 0.95 and teacher_result.mean_iou > 0.7
    assert taught.mean_iou > alone.mean_iou           # measured 0.669 vs 0.640
    assert taught.accuracy > alone.accuracy - 0.1     # measured 0.860 vs 0.885


def test_bounded_regression_loss_is_zero_when_student_beats_teacher():
    target = torch.zeros(2, 4)
    student = torch.tensor([[0.1, 0, 0, 0], [1.0, 0, 0, 0]])
    teacher = torch.tensor([[0.5, 0, 0, 0], [0.5, 0, 0, 0]])
    # row 0: student error 0.01 < teacher 0.25 -> 0; row 1: 1.0 > 0.25 -> 1.0; mean 0.5 (Chen et al. eq. (4))
    assert float(distill.kl.bounded_regression_loss(student, teacher, target)) == pytest.approx(0.5)


def test_unknown_loss_and_missing_teacher_are_config_errors(digits):
    from hwsim.errors import ConfigError

    with pytest.raises(ConfigError, match="loss must be one of"):
        distill.fit(nn.Linear(64, 10), digits, loss="dark_knowledge")
    with pytest.raises(ConfigError, match="needs a teacher"):
        distill.fit(nn.Linear(64, 10), digits, loss="hinton")

"""QSGD's Elias-coded wire size (Alistarh et al., NIPS 2017, Sec. 3.2): the expected size the comm model
uses agrees with encoding real Gaussian gradients, and the Elias omega lengths match a plain encoder."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from hwsim.compress.gradients import qsgd
from hwsim.models.comm import elias_omega_lengths, gradient_bits, qsgd_expected_bits


def _elias_omega_code(n: int) -> str:
    """Plain Elias omega encoder: prepend binary(n), recurse on its length - 1, end with '0'."""
    code = "0"
    while n > 1:
        binary = bin(n)[2:]
        code = binary + code
        n = len(binary) - 1
    return code


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=2**40))
def test_elias_omega_lengths_match_a_plain_encoder(n):
    assert int(elias_omega_lengths([n])[0]) == len(_elias_omega_code(n))


def test_elias_omega_known_codes():
    # Elias (1975): omega(1) = 0, omega(2) = 10 0, omega(4) = 10 100 0, omega(16) = 10 100 10000 0
    assert [_elias_omega_code(v) for v in (1, 2, 4, 16)] == ["0", "100", "101000", "10100100000"]
    assert list(elias_omega_lengths([1, 2, 4, 16])) == [1, 3, 6, 11]


@pytest.mark.parametrize("bits,bucket", [(2, 64), (4, 512), (4, 128), (8, 512)])
def test_expected_size_matches_encoding_gaussian_gradients(bits, bucket):
    n = 200_000
    generator = torch.Generator().manual_seed(bits * 1000 + bucket)
    grad = torch.randn(n, generator=generator)
    measured = qsgd(grad, levels=2 ** (bits - 1) - 1, bucket_size=bucket, generator=generator).bits
    expected = qsgd_expected_bits(n, bits, bucket)
    assert expected == pytest.approx(measured, rel=0.02)
    assert gradient_bits(n, f"qsgd:{bits}", bucket=bucket) == expected


def test_elias_coding_beats_fixed_length_where_levels_are_mostly_zero():
    n = 1_000_000
    fixed = gradient_bits(n, "qsgd:4", coding="fixed", bucket=512)
    elias = gradient_bits(n, "qsgd:4", bucket=512)
    # s = 7 levels on a 512-bucket: most levels are 0, so the code is well under 4 bits/element
    assert elias / n < 0.75 * fixed / n
    # the saving shrinks as s grows and fewer levels are zero (s = 1: ~0.46 of 2 bits; s = 127: ~6.4 of 8)
    saving = [gradient_bits(n, f"qsgd:{b}") / gradient_bits(n, f"qsgd:{b}", coding="fixed") for b in (2, 4, 8)]
    assert saving[0] < saving[1] < saving[2] < 1.0
    # one bucket of d elements sends one fp32 norm
    assert gradient_bits(512, "qsgd:4", coding="fixed") == 512 * 4 + 32
    assert math.isclose(qsgd_expected_bits(0, 4), 0.0)

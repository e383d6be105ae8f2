"""Low-rank factorizations: exactness at full rank, error falling with rank, closed-form params/MACs
against the modules and the lowered graph, EVBMF on planted ranks, tensorly cross-checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hwsim.compress import lowrank
from hwsim.compress import lowrank_math as lm
from hwsim.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spectral_conv(K=24, C=16, R=3, S=3, seed=0, **kw) -> nn.Conv2d:
    """A conv whose weight has a decaying spectrum along every mode (like a trained layer)."""
    gen = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(C, K, (R, S), **kw)
    core = torch.randn(K, C, R, S, generator=gen)
    for mode, n in enumerate((K, C)):
        decay = torch.exp(-torch.arange(n, dtype=torch.float32) / 4).reshape([-1 if m == mode else 1 for m in range(4)])
        core = core * decay
    conv.weight.data.copy_(core)
    return conv


def _macs(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def _factorize(method, module, **params):
    holder = nn.Sequential(module)
    report = method(holder, [("0", module)], **params)
    return holder[0], report


def _error(report) -> float:
    return dict(report.metrics)["mean_rel_error"]


# ----- exactness at full rank --------------------------------------------------------------------------------

@pytest.mark.parametrize("method, params", [
    (lowrank.svd_method, {"rank": 10_000}),
    (lowrank.tucker2_method, {"ranks": [24, 16]}),
    (lowrank.btd_method, {"n_blocks": 1, "ranks": [24, 16]}),
])
def test_conv_factorization_exact_at_full_rank(method, params):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3, stride=2, padding=1, dilation=1)
    x = torch.randn(2, 16, 9, 9)
    new, report = _factorize(method, conv, **params)
    torch.testing.assert_close(new(x), conv(x), atol=1e-5, rtol=1e-5)
    assert _error(report) < 1e-6


def test_cp_exact_on_planted_cp_weight():
    gen = torch.Generator().manual_seed(1)
    factors = [torch.randn(n, 5, generator=gen) for n in (12, 8, 3, 3)]
    conv = nn.Conv2d(8, 12, 3, padding=1, stride=(2, 1))
    conv.weight.data.copy_(lm.cp_reconstruct(torch.ones(5), factors).float())
    x = torch.randn(2, 8, 7, 7)
    new, report = _factorize(lowrank.cp_method, conv, rank=5)
    assert _error(report) < 1e-5
    torch.testing.assert_close(new(x), conv(x), atol=1e-4, rtol=1e-4)
    assert [m.groups for m in new] == [1, 5, 5, 1]  # 1x1 -> Rx1 depthwise -> 1xS depthwise -> 1x1 (Lebedev)


@pytest.mark.parametrize("method, params", [
    (lowrank.svd_method, {"rank": 10_000}),
    (lowrank.tt_method, {"max_rank": 10_000}),
    (lowrank.tr_method, {"rank": 64, "in_modes": (4, 6), "out_modes": (5, 6)}),
    (lowrank.bt_rnn_method, {"n_blocks": 1, "block_rank": 10_000}),
])
def test_linear_factorization_exact_at_full_rank(method, params):
    torch.manual_seed(0)
    linear = nn.Linear(24, 30)
    x = torch.randn(3, 24)
    new, report = _factorize(method, linear, **params)
    torch.testing.assert_close(new(x), linear(x), atol=1e-4, rtol=1e-4)
    assert _error(report) < 1e-5


@pytest.mark.parametrize("kind, layers", [("lstm", 1), ("gru", 1), ("lstm", 2), ("gru", 2)])
def test_bt_rnn_replaces_input_to_hidden_of_recurrent_layers(kind, layers):
    torch.manual_seed(0)
    rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(12, 8, num_layers=layers, batch_first=True)
    x = torch.randn(2, 5, 12)
    new, report = _factorize(lowrank.bt_rnn_method, rnn, n_blocks=1, block_rank=100, n_modes=2)
    out_ref, state_ref = rnn(x)
    out, state = new(x)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, state_ref, atol=1e-5, rtol=1e-5)
    assert new.hwsim_meta["compression"][0].startswith("bt(n=1,")


# ----- error falls as rank rises --------------------------------------------------------------------------

@pytest.mark.parametrize("method, key, values", [
    (lowrank.svd_method, "rank", [2, 6, 12, 24]),
    (lowrank.tucker2_method, "ranks", [2, 6, 12, 16]),
    (lowrank.cp_method, "rank", [2, 8, 24, 64]),
    (lowrank.btd_method, "n_blocks", [1, 2, 4, 8]),
])
def test_conv_error_falls_with_rank(method, key, values):
    errors = []
    for value in values:
        params = {key: value} if key != "n_blocks" else {key: value, "ranks": 3}
        _, report = _factorize(method, _spectral_conv(), **params)
        errors.append(_error(report))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    if method in (lowrank.svd_method, lowrank.tucker2_method):
        assert errors[-1] < 0.05


@pytest.mark.parametrize("method, key, values, extra", [
    (lowrank.tt_method, "max_rank", [1, 2, 4, 8], {}),
    (lowrank.tr_method, "rank", [1, 2, 3, 6], {}),
    (lowrank.bt_rnn_method, "block_rank", [1, 2, 4, 8], {"n_blocks": 1}),
])
def test_tensorized_error_falls_with_rank(method, key, values, extra):
    torch.manual_seed(0)
    u, v = torch.randn(64, 8), torch.randn(8, 48)
    errors = []
    for value in values:
        linear = nn.Linear(48, 64)
        linear.weight.data.copy_(u @ v + 0.1 * torch.randn(64, 48))
        _, report = _factorize(method, linear, **{key: value}, **extra)
        errors.append(_error(report))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


# ----- closed-form parameters and MACs ----------------------------------------------------------------------

CONV_CASES = [
    ("svd", lowrank.svd_method, {"rank": 5}, 5),
    ("cp", lowrank.cp_method, {"rank": 7, "n_iter": 20}, 7),
    ("tucker2", lowrank.tucker2_method, {"ranks": [6, 4]}, (6, 4)),
    ("btd", lowrank.btd_method, {"n_blocks": 3, "ranks": [3, 2]}, (3, 2)),
]


@pytest.mark.parametrize("kind, method, params, rank", CONV_CASES)
@pytest.mark.parametrize("geometry", [dict(stride=1, padding=1), dict(stride=(2, 1), padding=(1, 0), dilation=2)])
def test_conv_params_and_macs_match_closed_form(kind, method, params, rank, geometry):
    conv = _spectral_conv(K=12, C=8, **geometry)
    x = torch.randn(1, 8, 11, 10)
    new, _ = _factorize(method, conv, **params)
    want_params, want_macs = lowrank.closed_form_conv(
        kind, K=12, C=8, R=3, S=3, in_hw=(11, 10), rank=rank, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, n_blocks=params.get("n_blocks", 1))
    assert lowrank.n_params(new) == want_params
    assert _macs(new, x) == want_macs


def test_tensorized_params_and_macs_match_closed_form():
    from hwsim.compress import tensor_nets as tn

    linear = nn.Linear(120, 60)
    x = torch.randn(3, 120)
    cases = [
        (tn.TTLinear.from_linear(linear, in_modes=(4, 5, 6), out_modes=(3, 4, 5), max_rank=3),
         tn.closed_form_tt_macs, tn.closed_form_tt_params),
        (tn.TRLinear.from_linear(linear, in_modes=(4, 5, 6), out_modes=(3, 4, 5), max_rank=3),
         tn.closed_form_tr_macs, tn.closed_form_tt_params),
    ]
    for layer, macs_fn, params_fn in cases:
        assert _macs(layer, x) == macs_fn(layer.in_modes, layer.out_modes, layer.ranks, rows=3)
        assert lowrank.n_params(layer) == params_fn(layer.in_modes, layer.out_modes, layer.ranks)
    bt = tn.BTLinear.from_linear(linear, in_modes=(4, 5, 6), out_modes=(3, 4, 5), block_ranks=(2, 2, 3), n_blocks=2)
    assert _macs(bt, x) == tn.closed_form_bt_macs((4, 5, 6), (3, 4, 5), (2, 2, 3), 2, rows=3)
    assert lowrank.n_params(bt) == tn.closed_form_bt_params((4, 5, 6), (3, 4, 5), (2, 2, 3), 2)
    # hand count, TT ranks (1,3,3,1): 1*4*3*3 + 3*5*4*3 + 3*6*5*1 = 36 + 180 + 90 cores, + 60 bias
    assert tn.closed_form_tt_params((4, 5, 6), (3, 4, 5), (1, 3, 3, 1)) == 366


def test_lowered_graph_macs_equal_closed_form():
    """Every factorization in one model, lowered once: per-source MACs equal the closed forms."""
    from hwsim.compress import tensor_nets as tn
    from hwsim.lower import lower

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1),
                          nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.Conv2d(16, 16, 3, padding=1), nn.Flatten(),
                          nn.Linear(256, 24), nn.Linear(24, 24), nn.Linear(24, 30))
    lowrank.svd_method(model, [("0", model[0])], rank=3)
    lowrank.cp_method(model, [("1", model[1])], rank=5, n_iter=10)
    lowrank.tucker2_method(model, [("2", model[2])], ranks=[6, 4])
    lowrank.btd_method(model, [("3", model[3])], n_blocks=2, ranks=[3, 2])
    lowrank.tt_method(model, [("5", model[5])], max_rank=3, in_modes=(4, 8, 8), out_modes=(2, 3, 4))
    lowrank.tr_method(model, [("6", model[6])], rank=2, in_modes=(2, 3, 4), out_modes=(4, 3, 2))
    lowrank.bt_rnn_method(model, [("7", model[7])], n_blocks=2, block_rank=2, in_modes=(4, 6), out_modes=(5, 6))
    graph = lower(model, (1, 4, 8, 8))
    macs = {}
    for layer in graph.compute_layers():
        macs[layer.source.split(".")[0]] = macs.get(layer.source.split(".")[0], 0) + layer.macs
    conv = lowrank.closed_form_conv
    assert macs["0"] == conv("svd", K=8, C=4, R=3, S=3, in_hw=(8, 8), rank=3, padding=(1, 1))[1]
    assert macs["1"] == conv("cp", K=8, C=8, R=3, S=3, in_hw=(8, 8), rank=5, padding=(1, 1))[1]
    assert macs["2"] == conv("tucker2", K=16, C=8, R=3, S=3, in_hw=(8, 8), rank=(6, 4), stride=(2, 2),
                             padding=(1, 1))[1]
    assert macs["3"] == conv("btd", K=16, C=16, R=3, S=3, in_hw=(4, 4), rank=(3, 2), padding=(1, 1), n_blocks=2)[1]
    assert macs["5"] == tn.closed_form_tt_macs((4, 8, 8), (2, 3, 4), model[5].ranks)
    assert macs["6"] == tn.closed_form_tr_macs((2, 3, 4), (4, 3, 2), model[6].ranks)
    assert macs["7"] == tn.closed_form_bt_macs((4, 6), (5, 6), model[7].block_ranks, 2)
    layers = [layer for layer in graph.compute_layers() if layer.source.startswith("5")]
    assert len(layers) == 3 and all("tt(r=3)" in layer.compression for layer in layers)
    kinds = [layer.op.value for layer in graph.compute_layers() if layer.source.startswith("1")]
    assert kinds == ["conv", "depthwise", "depthwise", "conv"]     # Lebedev's 1x1, Rx1, 1xS, 1x1


# ----- rank selection ------------------------------------------------------------------------------------------

def test_evbmf_recovers_planted_rank():
    gen = torch.Generator().manual_seed(0)
    signal = torch.randn(60, 6, generator=gen) @ torch.randn(6, 150, generator=gen)
    assert lm.evbmf_rank(signal + 0.3 * torch.randn(60, 150, generator=gen)) == 6
    assert lm.evbmf_rank(torch.randn(60, 150, generator=gen)) == 0   # pure noise: nothing kept


def test_tucker2_default_ranks_come_from_evbmf():
    gen = torch.Generator().manual_seed(0)
    core = torch.randn(5, 3, 3, 3, generator=gen)
    weight = torch.einsum("abrs,ka,cb->kcrs", core, torch.randn(20, 5, generator=gen), torch.randn(16, 3, generator=gen))
    conv = nn.Conv2d(16, 20, 3)
    conv.weight.data.copy_(weight + 0.01 * torch.randn(weight.shape, generator=gen))
    _, report = _factorize(lowrank.tucker2_method, conv)
    assert report.changes[0].change == "tucker2(r=5,3)"


def test_rank_by_energy_and_budget():
    s = torch.tensor([4.0, 2.0, 1.0, 1.0])       # energies 16, 4, 1, 1 of 22
    assert lm.choose_rank(s, energy=0.7) == 1
    assert lm.choose_rank(s, energy=0.9) == 2
    assert lm.choose_rank(s, budget=0.5, cost_per_rank=10, full_cost=40) == 2
    with pytest.raises(ConfigError, match="exactly one"):
        lm.choose_rank(s, rank=2, energy=0.5)
    linear = nn.Linear(100, 100)
    new, _ = _factorize(lowrank.svd_method, linear, budget=0.25)   # r * 200 <= 2500 -> r = 12
    assert new[0].out_features == 12


def test_grouped_convs_are_skipped_with_a_reason():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8))
    report = lowrank.tucker2_method(model, [("0", model[0])], ranks=2)
    assert report.changes[0].change.startswith("skipped") and isinstance(model[0], nn.Conv2d)


# ----- tensorly cross-checks ---------------------------------------------------------------------------

def test_decompositions_agree_with_tensorly():
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import partial_tucker, tensor_train

    weight = _spectral_conv().weight.detach().double()
    core, factors = lm.tucker(weight, (0, 1), (8, 6), hooi_iters=10)
    ours = float((weight - lm.tucker_reconstruct(core, factors, (0, 1))).norm() / weight.norm())
    (tl_core, tl_factors), _ = partial_tucker(tl.tensor(weight.numpy()), rank=[8, 6], modes=[0, 1], n_iter_max=50)
    theirs = float(tl.norm(weight.numpy() - tl.tenalg.multi_mode_dot(tl_core, tl_factors, modes=[0, 1]))
                   / tl.norm(weight.numpy()))
    assert ours == pytest.approx(theirs, rel=1e-3)
    tt = tensor_train(tl.tensor(weight.numpy()), rank=[1, 5, 5, 3, 1])
    tt_theirs = float(tl.norm(weight.numpy() - tl.tt_to_tensor(tt)) / tl.norm(weight.numpy()))
    tt_ours = lm.ring_reconstruct(lm.tt_svd(weight, max_rank=5))
    assert float((weight - tt_ours).norm() / weight.norm()) == pytest.approx(tt_theirs, rel=1e-6)


def test_cp_als_matches_tensorly_parafac_error():
    pytest.importorskip("tensorly")
    weight = _spectral_conv(K=10, C=8).weight.detach().double()
    errors = []
    for solver in ("als", "tensorly"):
        w, f = lm.cp_decompose(weight, 6, solver=solver, n_iter=200)
        errors.append(float((weight - lm.cp_reconstruct(w, f)).norm() / weight.norm()))
    assert errors[0] == pytest.approx(errors[1], abs=0.02)


def test_clear_errors():
    with pytest.raises(ConfigError, match="tensorly"):
        import sys

        saved = sys.modules.get("tensorly")
        sys.modules["tensorly"] = None      # import tensorly -> ImportError
        try:
            lm.cp_decompose(torch.randn(3, 3, 2, 2), 2, solver="tensorly")
        finally:
            if saved is not None:
                sys.modules["tensorly"] = saved
            else:
                del sys.modules["tensorly"]
    with pytest.raises(ConfigError, match="btd: give ranks or budget"):
        lowrank.btd_method(nn.Sequential(nn.Conv2d(4, 4, 3)), [])
    with pytest.raises(ConfigError, match="budget must be in"):
        _factorize(lowrank.tucker2_method, nn.Conv2d(4, 4, 3), budget=2.0)

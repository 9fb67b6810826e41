"""Steepness measures: exact on quadratics, consistent with explicit Hessians and plain loops."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from study.core.config import LandscapeConfig, TrialConfig
from study.data import load_dataset
from study.landscape import measure_steepness
from study.landscape.hessian import hessian_at, hutchinson_trace, top_eigenvalue
from study.landscape.slices import (
    evaluate_along,
    filter_normalised_direction,
    quadratic_curvature,
    slice_directions,
    slice_forwards,
)
from study.landscape.steepness import MIN_BATCH, MeasurementPlan, plan_measurement, trial_steepness
from study.training.losses import get_amplification, get_metric
from study.training.models import build_model
from study.training.train import train

mse = get_metric("mse").loss
CHEAP = dict(power_iters=20, hutchinson_probes=3, grid_1d=5, grid_2d=3)


class LinearAE(nn.Module):
    """x_hat = W x on flattened pixels: under MSE its Hessian is known in closed form."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1)).view_as(x)


class TinyAE(nn.Module):
    """A non-quadratic model small enough for an explicit Hessian."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 4), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view_as(x)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: thread synchronisation, not arithmetic, dominates on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _psd(n: int, eigenvalues: torch.Tensor, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=_gen(seed), dtype=torch.float64))
    return (q * eigenvalues) @ q.T


def _quadratic_hessian(a: torch.Tensor):
    """Hessian object of 0.5 w^T A w at a random w (the Hessian is A everywhere)."""
    w = torch.randn(a.shape[0], generator=_gen(1), dtype=a.dtype)
    return hessian_at(lambda p: 0.5 * p["w"] @ a @ p["w"], {"w": w})


def _linear_ae_setup(n: int = 32, d: int = 16):
    torch.manual_seed(0)
    model = LinearAE(d)
    x = torch.rand(n, 1, 4, d // 4)
    xf = x.flatten(1).double()
    block = 2.0 / (n * d) * xf.T @ xf  # Hessian of the MSE w.r.t. W is kron(I_d, block)
    return model, x, block


def _conv_model() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("conv_ae", 1, 28, 8, 4)
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm running statistics, so eval != train mode
        for _ in range(3):
            model(torch.rand(16, 1, 28, 28))
    return model


def _batch(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=_gen(3))


def test_lanczos_recovers_top_eigenvalue_of_quadratic() -> None:
    a = _psd(
        12, torch.tensor([9.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.3, 0.2, 0.1, 0.0], dtype=torch.float64)
    )
    eig = top_eigenvalue(_quadratic_hessian(a), iters=200, generator=_gen(), tol=1e-10)
    assert eig.value == pytest.approx(9.0, rel=1e-8)
    assert eig.converged and eig.residual <= 1e-10
    assert eig.iters <= 12  # a Krylov space of dimension 12 is the whole space


def test_top_positive_curvature_when_a_negative_eigenvalue_dominates() -> None:
    """Power iteration would return -10 here (largest magnitude); sharpness is the top positive one."""
    spectrum = torch.cat([torch.tensor([-10.0, -6.0, 3.0, 2.5]), torch.linspace(-1.0, 2.0, 36)]).double()
    a = _psd(40, spectrum, seed=5)
    eig = top_eigenvalue(_quadratic_hessian(a), iters=40, generator=_gen(), tol=1e-6)
    assert eig.converged
    assert eig.value == pytest.approx(3.0, rel=1e-5)
    # Through the whole measurement, on a quadratic "model" (parameters w, objective 0.5 w^T A w).
    model = _Quadratic(a)
    res = measure_steepness(
        model,
        torch.zeros(1),
        lambda out, _: out,
        power_iters=40,
        hutchinson_probes=0,
        grid_1d=0,
        grid_2d=0,
        power_tol=1e-6,
    )
    assert res.metrics["sharpness"] == pytest.approx(3.0, rel=1e-5)


class _Quadratic(nn.Module):
    """A 'model' whose output is 0.5 w^T A w: its loss Hessian is A."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a.float())
        self.w = nn.Parameter(torch.randn(a.shape[0], generator=_gen(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.w @ self.a @ self.w + 0.0 * x.sum()


def test_lanczos_stops_early_and_marks_an_unconverged_measurement() -> None:
    a = _psd(60, torch.linspace(1.0, 10.0, 60, dtype=torch.float64))
    loose = top_eigenvalue(_quadratic_hessian(a), iters=60, generator=_gen(), tol=1e-2)
    tight = top_eigenvalue(_quadratic_hessian(a), iters=60, generator=_gen(), tol=1e-8)
    capped = top_eigenvalue(_quadratic_hessian(a), iters=3, generator=_gen(), tol=1e-8)
    assert loose.converged and tight.converged and loose.iters < tight.iters
    assert loose.residual <= 1e-2 < capped.residual
    assert capped.iters == 3 and not capped.converged
    # The residual bounds the error: some eigenvalue lies within residual * scale of the estimate.
    assert abs(loose.value - 10.0) <= loose.residual * 10.0 + 1e-12
    model = _Quadratic(a)
    res = measure_steepness(
        model,
        torch.zeros(1),
        lambda out, _: out,
        power_iters=3,
        hutchinson_probes=0,
        grid_1d=0,
        grid_2d=0,
        power_tol=1e-8,
    )
    assert "sharpness" not in res.metrics  # not converged: marked, not reported as a number
    assert res.metrics["sharpness_converged"] == 0.0
    assert res.metrics["sharpness_iters"] == 3.0
    assert res.metrics["sharpness_residual"] > 1e-8


def test_sharpness_and_trace_of_linear_autoencoder_match_closed_form() -> None:
    model, x, block = _linear_ae_setup()
    d = block.shape[0]
    res = measure_steepness(
        model, x, mse, power_iters=200, power_tol=1e-6, hutchinson_probes=64, grid_1d=0, grid_2d=0
    )
    assert res.metrics["sharpness"] == pytest.approx(float(torch.linalg.eigvalsh(block).max()), rel=1e-3)
    # Rademacher variance of one sample: 2 * sum of squared off-diagonal Hessian entries.
    off = block - torch.diag(torch.diag(block))
    sd_mean = float((2 * d * off.pow(2).sum()) ** 0.5) / 64**0.5
    trace = float(d * torch.trace(block))
    assert abs(res.metrics["hessian_trace"] - trace) < 4 * sd_mean
    assert res.metrics["hessian_trace"] == pytest.approx(res.arrays["trace_samples"].mean())
    assert res.arrays["trace_samples"].shape == (64,)


def test_hutchinson_mean_matches_trace() -> None:
    a = _psd(50, torch.linspace(0.5, 3.0, 50, dtype=torch.float64), seed=2)
    samples = hutchinson_trace(_quadratic_hessian(a), probes=400, generator=_gen())
    off = a - torch.diag(torch.diag(a))
    sd_mean = float((2 * off.pow(2).sum()) ** 0.5) / 400**0.5
    trace = float(torch.trace(a))
    assert 4 * sd_mean < 0.05 * trace  # the check below is a few-percent check
    assert abs(samples.mean() - trace) < 4 * sd_mean
    assert samples.std() > 0


def test_hutchinson_is_exact_per_probe_for_diagonal_hessian() -> None:
    a = torch.diag(torch.linspace(-1.0, 4.0, 30, dtype=torch.float64))
    samples = hutchinson_trace(_quadratic_hessian(a), probes=8, generator=_gen())
    np.testing.assert_allclose(samples, float(torch.trace(a)), rtol=1e-12)


def test_hvp_matches_explicit_hessian() -> None:
    torch.manual_seed(0)
    model = TinyAE().double()
    x = torch.rand(5, 1, 2, 2, dtype=torch.float64)
    params = {n: p.detach() for n, p in model.named_parameters()}
    shapes = [p.shape for p in params.values()]
    flat = torch.cat([p.flatten() for p in params.values()])

    def loss_of(p):
        return mse(functional_call(model, p, (x,)), x)

    def loss_of_flat(v):
        parts = torch.split(v, [s.numel() for s in shapes])
        return loss_of({n: t.view(s) for n, t, s in zip(params, parts, shapes, strict=True)})

    h = torch.autograd.functional.hessian(loss_of_flat, flat)
    v = torch.randn(flat.shape, generator=_gen(4), dtype=torch.float64)
    vs = list(torch.split(v, [s.numel() for s in shapes]))
    hv = hessian_at(loss_of, params).matvec([t.view(s) for t, s in zip(vs, shapes, strict=True)])
    torch.testing.assert_close(torch.cat([t.flatten() for t in hv]), h @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", ["mse", "ssim"])
def test_batched_probes_equal_one_probe_at_a_time(metric: str) -> None:
    model, x = _conv_model().eval(), _batch()
    opts = dict(power_iters=0, hutchinson_probes=5, grid_1d=0, grid_2d=0, seed=2)
    one = measure_steepness(model, x, get_metric(metric).loss, chunk_size=1, **opts)
    batched = measure_steepness(model, x, get_metric(metric).loss, chunk_size=3, **opts)  # chunks of 3 and 2
    np.testing.assert_allclose(
        batched.arrays["trace_samples"], one.arrays["trace_samples"], rtol=1e-5, atol=1e-6
    )


def test_filter_normalised_direction_matches_filter_norms() -> None:
    model = _conv_model()
    params = dict(model.named_parameters())
    d = filter_normalised_direction(params, _gen())
    assert d.keys() == params.keys()
    n_filtered = 0
    for name, p in params.items():
        assert d[name].shape == p.shape
        if p.dim() <= 1:
            assert not d[name].any(), name
            continue
        n_filtered += 1
        torch.testing.assert_close(d[name].flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))
        assert not torch.allclose(d[name], p.detach())
    assert n_filtered >= 4
    again = filter_normalised_direction(params, _gen())
    assert all(torch.equal(d[n], again[n]) for n in params)


@pytest.mark.parametrize("metric", ["mse", "ssim"])
def test_batched_slice_equals_python_loop(metric: str) -> None:
    model = _conv_model().eval()
    x = _batch()
    loss_fn = get_metric(metric).loss
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    d1 = filter_normalised_direction(params, _gen(1))
    d2 = filter_normalised_direction(params, _gen(2))
    coords = torch.tensor(
        [[-1.0, 0.5], [-0.3, 0.0], [0.0, 0.0], [0.7, -0.2], [1.0, 1.0]], dtype=torch.float64
    )
    batched = evaluate_along(model, x, [loss_fn, mse], [d1, d2], coords, chunk_size=2)
    assert batched.shape == (2, 5)
    with torch.no_grad():
        loop = [
            float(
                loss_fn(
                    functional_call(
                        model, ({n: p + a * d1[n] + b * d2[n] for n, p in params.items()}, buffers), (x,)
                    ),
                    x,
                )
            )
            for a, b in coords.tolist()
        ]
        plain = float(loss_fn(model(x), x))
    np.testing.assert_allclose(batched[0], loop, rtol=1e-5)
    assert batched[0, 2] == pytest.approx(plain, rel=1e-6)
    assert len(set(batched[0].round(8))) == 5  # the directions actually move the loss


def test_measure_leaves_model_untouched_and_uses_eval_mode() -> None:
    model = _conv_model()
    model.train()
    model.decoder.eval()  # a mixed state must come back as it was
    modes = {n: m.training for n, m in model.named_modules()}
    x = _batch()
    with torch.no_grad():
        before = {n: t.clone() for n, t in model.state_dict().items()}
    sentinel = torch.full_like(model.to_latent.weight, 7.0)
    model.to_latent.weight.grad = sentinel.clone()

    res = measure_steepness(model, x, mse, power_iters=3, hutchinson_probes=2, grid_1d=5, grid_2d=5)

    assert {n: m.training for n, m in model.named_modules()} == modes
    assert all(torch.equal(t, before[n]) for n, t in model.state_dict().items())
    assert torch.equal(model.to_latent.weight.grad, sentinel)
    assert all(p.grad is None for n, p in model.named_parameters() if n != "to_latent.weight")
    model.eval()
    with torch.no_grad():
        eval_loss = float(mse(model(x), x))
    assert res.metrics["loss_at_minimum"] == pytest.approx(eval_loss, rel=1e-6)
    assert res.arrays["loss_1d"][2] == pytest.approx(eval_loss, rel=1e-5)
    assert res.arrays["loss_2d"][2, 2] == pytest.approx(eval_loss, rel=1e-5)
    # The first 2-D direction is the 1-D one: the column at beta = 0 is the 1-D slice.
    np.testing.assert_allclose(res.arrays["loss_2d"][:, 2], res.arrays["loss_1d"], rtol=1e-5)
    np.testing.assert_array_equal(res.arrays["alphas_1d"], np.linspace(-1, 1, 5))


def test_slice_curvature_is_exact_for_a_quadratic_slice() -> None:
    alphas = np.linspace(-1, 1, 9)
    assert quadratic_curvature(alphas, 3 * alphas**2 - 2 * alphas + 1) == pytest.approx(6.0, rel=1e-10)
    # A linear autoencoder under MSE is quadratic in its weights: the fitted second derivative along the
    # filter-normalised direction d is exactly d^T H d = 2 / (N D) * ||X d^T||^2.
    model, x, _ = _linear_ae_setup()
    res = measure_steepness(model, x, mse, power_iters=0, hutchinson_probes=0, grid_1d=7, grid_2d=0, seed=5)
    n, d = x.shape[0], x[0].numel()
    params = dict(model.named_parameters())
    direction = slice_directions(params, seed=5)[0]["lin.weight"].double()
    exact = 2.0 / (n * d) * float((x.flatten(1).double() @ direction.T).pow(2).sum())
    assert res.metrics["slice_curvature"] == pytest.approx(exact, rel=1e-4)


def test_same_seed_same_numbers_and_other_seed_other_draws() -> None:
    model, x = _conv_model(), _batch()
    a = measure_steepness(model, x, mse, seed=3, **CHEAP)
    b = measure_steepness(model, x, mse, seed=3, **CHEAP)
    c = measure_steepness(model, x, mse, seed=4, **CHEAP)
    assert a.metrics == b.metrics
    assert a.arrays.keys() == b.arrays.keys()
    assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    assert not np.array_equal(a.arrays["trace_samples"], c.arrays["trace_samples"])
    assert not np.array_equal(a.arrays["loss_1d"], c.arrays["loss_1d"])


def test_linear_amplification_scales_every_measure_by_lambda() -> None:
    model, x = _conv_model(), _batch()
    lam = 8.0  # a power of two: scaling is exact in floating point
    amplified = lambda x_hat, x: get_amplification("linear").apply(mse(x_hat, x), lam)  # noqa: E731
    base = measure_steepness(model, x, mse, **CHEAP)
    amp = measure_steepness(model, x, amplified, prefix="amp_", **CHEAP)
    assert set(amp.metrics) == {"amp_" + k for k in base.metrics}
    for key, value in base.metrics.items():
        scale = 1.0 if key.startswith("sharpness_") else lam  # iterations, residual, flag are scale-free
        assert amp.metrics["amp_" + key] == pytest.approx(scale * value, rel=1e-6), key
    for key in ("trace_samples", "loss_1d", "loss_2d"):
        np.testing.assert_allclose(amp.arrays["amp_" + key], lam * base.arrays[key], rtol=1e-6)


def _curvature_rounding(alphas: np.ndarray, losses: np.ndarray, ulps: int = 4) -> float:
    """Largest change of `quadratic_curvature` when each loss moves by `ulps` float32 roundings (exact: the fit
    is linear in the losses, so it is the sum of each unit response times that loss's rounding)."""
    eps = float(np.finfo(np.float32).eps)
    unit = np.eye(len(losses))
    return sum(
        abs(quadratic_curvature(alphas, unit[i])) * ulps * eps * abs(float(losses[i]))
        for i in range(len(losses))
    )


@pytest.mark.parametrize("form, factor", [("exp", 4.0), ("log", 3.0), ("linear", 8.0)])
def test_derived_objective_equals_direct_measurement(form: str, factor: float) -> None:
    """g(L)'s measures come from L's run (g' H + g'' grad grad^T); measuring g(L) directly must agree."""
    model, x = _conv_model(), _batch()
    g = lambda loss: get_amplification(form).apply(loss, factor)  # noqa: E731
    opts = dict(seed=1, power_iters=30, power_tol=1e-4, hutchinson_probes=3, grid_1d=5, grid_2d=3)
    joint = measure_steepness(model, x, mse, transforms={"amp_": g}, chunk_size=3, **opts)
    base = measure_steepness(model, x, mse, **opts)
    direct = measure_steepness(model, x, lambda x_hat, y: g(mse(x_hat, y)), prefix="amp_", **opts)
    assert joint.metrics.keys() == base.metrics.keys() | direct.metrics.keys()
    assert joint.metrics["amp_sharpness_converged"] == 1.0
    for key in ("sharpness", "hessian_trace", "loss_at_minimum"):
        assert joint.metrics[key] == pytest.approx(base.metrics[key], rel=1e-5), key  # chunked vs single HVPs
    # The curvature fit is a difference of nearly equal losses: chunked and single forwards may round each
    # float32 loss differently, and the bound is what a few roundings of every slice loss can move it.
    rounding = _curvature_rounding(base.arrays["alphas_1d"], base.arrays["loss_1d"])
    assert joint.metrics["slice_curvature"] == pytest.approx(base.metrics["slice_curvature"], abs=rounding)
    for key in ("sharpness", "hessian_trace", "loss_at_minimum", "slice_curvature"):
        assert joint.metrics["amp_" + key] == pytest.approx(direct.metrics["amp_" + key], rel=1e-4), key
    for key in ("trace_samples", "loss_1d", "loss_2d"):
        np.testing.assert_allclose(joint.arrays["amp_" + key], direct.arrays["amp_" + key], rtol=1e-4)
    if form == "exp":
        assert joint.metrics["amp_sharpness"] > factor * joint.metrics["sharpness"]  # g'' > 0 adds curvature


def test_zero_counts_skip_measures_and_bad_grids_raise() -> None:
    model, x = _conv_model(), _batch(4)
    res = measure_steepness(
        model, x, mse, power_iters=0, hutchinson_probes=0, grid_1d=0, grid_2d=0, prefix="p_"
    )
    assert set(res.metrics) == {"p_loss_at_minimum"}
    assert res.arrays == {}
    res = measure_steepness(
        model, x, mse, power_iters=2, power_tol=1.0, hutchinson_probes=0, grid_1d=3, grid_2d=0
    )
    convergence = {"sharpness_iters", "sharpness_residual", "sharpness_converged"}
    assert set(res.metrics) == {"loss_at_minimum", "sharpness", "slice_curvature"} | convergence
    assert set(res.arrays) == {"alphas_1d", "loss_1d"}
    with pytest.raises(ValueError, match="grid_1d"):
        measure_steepness(model, x, mse, grid_1d=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    model, x = _conv_model(), _batch()
    cpu = measure_steepness(model, x, mse, **CHEAP)
    gpu = measure_steepness(model.cuda(), x.cuda(), mse, **CHEAP)
    for key, value in cpu.metrics.items():
        assert gpu.metrics[key] == pytest.approx(value, rel=1e-3, abs=1e-6), key
    np.testing.assert_allclose(gpu.arrays["loss_2d"], cpu.arrays["loss_2d"], rtol=1e-4)


# --------------------------------------------------------------------------- budgeted measurement


def test_plan_follows_the_budget() -> None:
    lc = LandscapeConfig(budget=0.1)
    full = plan_measurement(LandscapeConfig(budget=0.0), 0.0, available=500)
    assert full == MeasurementPlan(64, lc.power_iters, lc.hutchinson_probes, lc.grid_1d, lc.grid_2d)
    assert plan_measurement(lc, 10 * full.work(), available=500) == full  # ample budget: the full counts
    assert plan_measurement(lc, full.work(), available=40).batch_size == 40  # never more than there is
    works = [plan_measurement(lc, w, available=500).work() for w in np.geomspace(1e2, 1e6, 25)]
    assert works == sorted(works)  # more budget never buys less measurement
    for budget_work in (full.work() / 2, full.work() / 5, full.work() / 10):
        plan = plan_measurement(lc, budget_work, available=500)
        assert plan.work() <= budget_work
        assert plan.power_iters == lc.power_iters  # Lanczos is never cut, only the rest
    tiny = plan_measurement(lc, 1.0, available=500)  # below the minimal plan: the minimal plan, over budget
    assert tiny.batch_size == MIN_BATCH and tiny.grid_2d == 0 and tiny.work() > 1.0


def test_slice_forwards_count_each_distinct_point_once() -> None:
    assert slice_forwards(21, 0) == 20  # the centre is the base loss
    assert slice_forwards(0, 5) == 24
    assert slice_forwards(21, 5) == 20 + 24 - 4  # the 2-D grid's beta = 0 row is on the 1-D grid
    assert slice_forwards(21, 7) == 20 + 48 - 2  # only +-1 are shared with a 1/3 step


def test_budgeted_estimates_match_full_cost_on_a_quadratic() -> None:
    """A linear AE under MSE is quadratic in its weights, with Hessian kron(I, 2/(N D) X^T X).

    Tolerances: sharpness and slice curvature 10% (the budget halves the batch,
    which changes X^T X by sampling), the trace 4 combined standard errors
    (Hutchinson's own noise).
    """
    model, x, _ = _linear_ae_setup(n=64)
    lc = LandscapeConfig(budget=0.1, hutchinson_probes=16)
    full = plan_measurement(LandscapeConfig(budget=0.0, hutchinson_probes=16), 0.0, available=64)
    cheap = plan_measurement(lc, full.work() / 4, available=64)
    assert cheap.work() <= full.work() / 4 and cheap.batch_size < full.batch_size

    def measure(plan: MeasurementPlan):
        return measure_steepness(
            model,
            x[: plan.batch_size],
            mse,
            power_iters=plan.power_iters,
            hutchinson_probes=plan.hutchinson_probes,
            grid_1d=plan.grid_1d,
            grid_2d=plan.grid_2d,
        )

    a, b = measure(full), measure(cheap)
    for res, plan in ((a, full), (b, cheap)):  # each against its own batch's closed form
        xf = x[: plan.batch_size].flatten(1).double()
        block = 2.0 / (plan.batch_size * xf.shape[1]) * xf.T @ xf
        assert res.metrics["sharpness"] == pytest.approx(float(torch.linalg.eigvalsh(block).max()), rel=1e-3)
    assert b.metrics["sharpness"] == pytest.approx(a.metrics["sharpness"], rel=0.1)
    assert b.metrics["slice_curvature"] == pytest.approx(a.metrics["slice_curvature"], rel=0.1)
    se = np.hypot(
        *(r.arrays["trace_samples"].std(ddof=1) / len(r.arrays["trace_samples"]) ** 0.5 for r in (a, b))
    )
    assert abs(b.metrics["hessian_trace"] - a.metrics["hessian_trace"]) <= 4 * se


@pytest.mark.slow
def test_budgeted_estimates_match_full_cost_on_a_trained_model() -> None:
    """Same seed, same trained conv AE: the default budget against the full counts.

    Tolerances: sharpness 10%, slice curvature 25% (the budget's 5-point fit of
    a non-quadratic slice on a smaller batch), trace 4 combined standard errors.
    """
    cfg = TrialConfig.from_dict(
        {
            "data": {"name": "digits", "normal_classes": list(range(9))},
            "latent_dim": 8,
            "width": 8,
            "epochs": 2,
            "batch_size": 32,
            "amplification": "exp",
            "factor": 10.0,
        }
    )
    data = load_dataset(cfg.data)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, data.in_channels, data.image_size, cfg.latent_dim, cfg.width)
    train(model, data.train, cfg, torch.device("cpu"))
    runs = {}
    for budget in (0.0, cfg.landscape.budget):
        c = dataclasses.replace(cfg, landscape=dataclasses.replace(cfg.landscape, budget=budget))
        runs[budget] = trial_steepness(model, data, c, torch.device("cpu"), cfg.epochs)
    (full_arrays, full), (cheap_arrays, cheap) = runs[0.0], runs[cfg.landscape.budget]
    assert cheap["steepness_batch_size"] < full["steepness_batch_size"]  # the budget did bind
    assert full["sharpness_converged"] == cheap["sharpness_converged"] == 1.0
    for prefix in ("", "amp_"):
        assert cheap[prefix + "sharpness"] == pytest.approx(full[prefix + "sharpness"], rel=0.1)
        assert cheap[prefix + "slice_curvature"] == pytest.approx(full[prefix + "slice_curvature"], rel=0.25)
        samples = [r[prefix + "trace_samples"] for r in (full_arrays, cheap_arrays)]
        se = np.hypot(*(s.std(ddof=1) / len(s) ** 0.5 for s in samples))
        assert abs(cheap[prefix + "hessian_trace"] - full[prefix + "hessian_trace"]) <= 4 * se

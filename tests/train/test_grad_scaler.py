"""fp16's loss scaling in the loop's optimizer step, exercised on the CPU with
torch.amp.GradScaler("cpu"): the loop itself scales only fp16 on CUDA (registry.train.fsdp
.grad_scaler), and no CUDA is needed to check the step's logic. A power-of-two scale makes
scaling and unscaling exact in fp32, so the comparisons are exact on any CPU."""

from __future__ import annotations

import torch

from registry.train.fsdp import grad_scaler
from registry.train.loop import backward, optimizer_step


def _model_and_data():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    return model, torch.optim.AdamW(model.parameters(), lr=0.1), x


def _steps(scaler, n=3, max_norm=0.5):
    model, opt, x = _model_and_data()
    norms = []
    for _ in range(n):
        backward(model(x).pow(2).sum(), scaler)
        norms.append(optimizer_step(list(model.parameters()), opt, scaler, max_norm))
        opt.zero_grad(set_to_none=True)
    return norms, [p.detach().clone() for p in model.parameters()]


def test_a_scaled_step_is_the_unscaled_step():
    # max_norm small enough that clipping acts: it must see the unscaled gradient
    plain_norms, plain = _steps(None)
    scaled_norms, scaled = _steps(torch.amp.GradScaler("cpu", init_scale=2.0**12))
    assert plain_norms == scaled_norms and all(n > 0.5 for n in plain_norms)
    assert all(torch.equal(a, b) for a, b in zip(plain, scaled, strict=True))


def test_an_overflow_skips_the_update_and_backs_off():
    model, opt, x = _model_and_data()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    before = [p.detach().clone() for p in model.parameters()]
    backward(model(x).pow(2).sum(), scaler)
    model.weight.grad[0, 0] = float("inf")  # an fp16 overflow, as it would show up
    assert optimizer_step(list(model.parameters()), opt, scaler, 1.0) is None
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert scaler.get_scale() == 2.0**11
    opt.zero_grad(set_to_none=True)
    backward(model(x).pow(2).sum(), scaler)  # the next clean step updates
    assert optimizer_step(list(model.parameters()), opt, scaler, 1.0) is not None
    assert not torch.equal(before[0], model.weight)


def test_only_fp16_on_cuda_gets_a_scaler():
    assert grad_scaler("cpu", torch.float16, sharded=False) is None
    assert grad_scaler("cpu", torch.float32, sharded=True) is None
    assert grad_scaler("cuda:0", torch.bfloat16, sharded=False) is None
    assert grad_scaler("cuda", torch.float32, sharded=True) is None

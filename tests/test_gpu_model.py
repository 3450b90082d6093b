"""Small models on the GPU give what they give on the CPU: Module.to('gpu'), forward (train
and eval), loss, backward, parameter gradients, batch-norm running statistics, SGD steps,
and back with to('cpu').

Each model needs the GPU op families of its layers (conv, pool, linear: convkit/gpu/conv.py,
pool.py, linear.py; norm, dense): it skips while one is missing. Emulated without a GPU
(tests/conftest.py).
Run: python -m pytest tests/test_gpu_model.py
"""
import importlib.util

import numpy as np
import pytest

import convkit
from convkit import nn
from helpers import assert_close

GPU_ONLY = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


def needs(*families):
    """Skip while one of these convkit/gpu/<family>.py is not in this build (the kernel branches merge separately)."""
    missing = [f for f in families if importlib.util.find_spec(f"convkit.gpu.{f}") is None]
    return pytest.mark.skipif(bool(missing), reason=f"convkit.gpu.{{{', '.join(missing)}}} not in this build yet")


def small_net(seed):
    """conv-bn-relu-pool, conv-lrn-relu, global average, dropout, linear: 10 classes."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, rng=rng), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, rng=rng), nn.LocalResponseNorm(5), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(0.3, rng=np.random.default_rng(seed + 1)), nn.Linear(12, 10, rng=rng))


def norm_dense_net(seed):
    """Only the norm and dense families' layers: (N, 4, 3, 2) -> 24 "classes"."""
    return nn.Sequential(nn.BatchNorm2d(4), nn.LocalResponseNorm(3, alpha=0.5), nn.ReLU(), nn.GroupNorm(2, 4),
                         nn.Flatten(), nn.Dropout(0.3, rng=np.random.default_rng(seed)))


@GPU_ONLY
@pytest.mark.parametrize("build,x_shape,classes", [
    pytest.param(small_net, (4, 3, 12, 10), 10, marks=needs("conv", "pool", "linear", "norm", "dense"), id="conv"),
    pytest.param(norm_dense_net, (5, 4, 3, 2), 24, marks=needs("norm", "dense"), id="norm_dense"),
])
def test_small_model_same_on_gpu_and_cpu(backend, build, x_shape, classes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    target = rng.integers(0, classes, x_shape[0])
    cpu_net, gpu_net = build(7), build(7).to("gpu")
    assert all(not isinstance(a, np.ndarray) for a in gpu_net.state_dict().values())
    dx, dt = backend.asarray(x), backend.asarray(target)
    loss_fn, gpu_loss_fn = nn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    opt, gpu_opt = nn.SGD(cpu_net, lr=0.1, momentum=0.9), nn.SGD(gpu_net, lr=0.1, momentum=0.9)
    for _ in range(2):                                   # train steps: dropout masks, BN stats, SGD
        logits, d_logits = cpu_net(x), gpu_net(dx)
        assert_close(backend.asnumpy(d_logits), logits, np.float32)
        loss, d_loss = loss_fn(logits, target), gpu_loss_fn(d_logits, dt)
        assert_close(backend.asnumpy(d_loss), loss, np.float32)
        opt.zero_grad()
        gpu_opt.zero_grad()
        assert_close(backend.asnumpy(gpu_net.backward(gpu_loss_fn.backward())), cpu_net.backward(loss_fn.backward()),
                     np.float32)
        for g, dg in zip(cpu_net.grads(), gpu_net.grads()):
            assert_close(backend.asnumpy(dg), g, np.float32)
        opt.step()
        gpu_opt.step()
    for a, b in zip(cpu_net.state_dict().values(), gpu_net.state_dict().values()):
        assert_close(backend.asnumpy(b), a, np.float32)
    cpu_net.eval()
    gpu_net.eval()
    assert_close(backend.asnumpy(gpu_net(dx)), cpu_net(x), np.float32)
    back = gpu_net.to("cpu")
    assert all(isinstance(a, np.ndarray) for a in back.state_dict().values())
    assert_close(back(x), cpu_net(x), np.float32)

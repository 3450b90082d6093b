"""convkit.nn layers and convkit.models: forward/backward vs the functional ops, gradients of
a whole net by finite differences, train/eval, state dicts, save/load, PyTorch parity."""
import importlib.util
import os
from collections import OrderedDict

import numpy as np
import pytest

import convkit
from convkit import models, nn
from helpers import assert_close

F64 = dict(dtype=np.float64)


def _x(rng, *shape):
    return rng.standard_normal(shape)


# ----------------------------------------------------------------------------- layers vs ops

def test_conv2d_layer_matches_functional(rng):
    layer = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=rng, **F64)
    x = _x(rng, 2, 4, 9, 8)
    y = layer(x)
    assert_close(y, convkit.conv2d(x, layer.weight, layer.bias, 2, 1, 1, 2))
    gy = _x(rng, *y.shape)
    gx = layer.backward(gy)
    ref = convkit.conv2d_backward(gy, x, layer.weight, 2, 1, 1, 2)
    assert_close(gx, ref[0])
    assert_close(dict(layer.named_grads())["weight"], ref[1])
    assert_close(dict(layer.named_grads())["bias"], ref[2])


def test_default_init_is_pytorch_kaiming_uniform(rng):
    layer = nn.Conv2d(8, 16, 3, rng=rng)
    bound = 1 / np.sqrt(8 * 9)
    assert layer.weight.dtype == np.float32 and layer.weight.shape == (16, 8, 3, 3)
    assert np.abs(layer.weight).max() <= bound and np.abs(layer.weight).max() > 0.9 * bound
    assert np.abs(layer.bias).max() <= bound
    a = nn.Linear(5, 3, rng=np.random.default_rng(1)).weight
    b = nn.Linear(5, 3, rng=np.random.default_rng(1)).weight
    np.testing.assert_array_equal(a, b)     # seeded by the explicit generator


@pytest.mark.parametrize("make,op", [
    (lambda: nn.MaxPool2d(3, 2, 1), lambda x: convkit.max_pool2d(x, 3, 2, 1)),
    (lambda: nn.AvgPool2d(2), lambda x: convkit.avg_pool2d(x, 2)),
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), lambda x: convkit.adaptive_avg_pool2d(x, (3, 2))),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
     lambda x: convkit.upsample2d(x, scale_factor=2, mode="bilinear", align_corners=False)),
    (lambda: nn.LocalResponseNorm(3), lambda x: convkit.local_response_norm(x, 3)),
    (lambda: nn.ReLU(), convkit.relu),
    (lambda: nn.Flatten(), lambda x: x.reshape(x.shape[0], -1)),
    (lambda: nn.GroupNorm(2, 4, **F64), lambda x: convkit.group_norm(x, 2)),
])
def test_parameterless_layers_forward_and_backward(rng, make, op):
    layer = make()
    x = _x(rng, 2, 4, 7, 6)
    y = layer(x)
    assert_close(y, op(x))
    # backward is the adjoint of the forward's linearisation: <J dx, gy> == <dx, J^T gy>
    gy, dx = _x(rng, *y.shape), _x(rng, *x.shape) * 1e-6
    gx = layer.backward(gy)
    layer2 = make()
    lin = (layer2(x + dx) - layer2(x - dx)) / 2
    assert abs(np.vdot(lin, gy) - np.vdot(dx, gx)) <= 1e-6 * max(1.0, abs(np.vdot(dx, gx)))


def test_inplace_relu_writes_its_input_and_keeps_the_gradient(rng):
    x = _x(rng, 2, 3, 5, 4)
    expected_y, expected_gx = convkit.relu(x), convkit.relu_backward(np.ones_like(x), x)
    layer = nn.ReLU(inplace=True)
    y = layer(x)
    assert y is x and np.array_equal(x, expected_y)          # written in place, as torch's inplace=True
    assert np.array_equal(layer.backward(np.ones_like(x)), expected_gx)
    ro = expected_y.copy()
    ro.flags.writeable = False                                # not writable: a new array instead
    assert layer(ro) is not ro and np.array_equal(layer(ro), expected_y)
    strided = _x(rng, 2, 3, 5, 8)[..., ::2]
    before = strided.copy()
    assert np.array_equal(layer(strided), convkit.relu(before)) and np.array_equal(strided, before)


def test_maxunpool_pairs_with_its_pool(rng):
    pool = nn.MaxPool2d(2, 2)
    unpool = nn.MaxUnpool2d(pool)
    x = _x(rng, 2, 3, 6, 8)
    y = unpool(pool(x))
    assert y.shape == x.shape
    expected = convkit.max_unpool2d(*convkit.max_pool2d(x, 2, 2, return_indices=True), 2, 2, output_size=(6, 8))
    assert_close(y, expected)


def test_batchnorm_train_and_eval(rng):
    bn = nn.BatchNorm2d(3, **F64)
    x = _x(rng, 4, 3, 5, 5) * 2 + 1
    y = bn(x)                                     # training: batch statistics
    assert_close(y.mean(axis=(0, 2, 3)), np.zeros(3), rtol=1e-8)
    assert_close(bn.running_mean, 0.1 * x.mean(axis=(0, 2, 3)))
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    y_eval = bn(x)                                # eval: running statistics
    assert_close(y_eval, convkit.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias))
    assert int(bn.num_batches_tracked) == 1


def test_dropout_train_and_eval(rng):
    drop = nn.Dropout(0.5, rng=np.random.default_rng(3))
    x = np.ones((1000,))
    y = drop(x)
    kept = y != 0
    assert 0.4 < kept.mean() < 0.6 and np.all(y[kept] == 2.0)
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), y)
    drop.eval()
    assert drop(x) is x and drop.backward(x) is x


# ----------------------------------------------------------------------------- whole network

def _tiny_net(rng):
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, rng=rng, **F64), nn.BatchNorm2d(4, **F64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1, groups=2, rng=rng, **F64), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 3 * 3, 5, rng=rng, **F64))


def test_whole_network_gradients_by_finite_differences(rng):
    net = _tiny_net(rng)
    x = _x(rng, 3, 2, 6, 6)
    target = np.array([0, 3, 4])
    loss_fn = nn.CrossEntropyLoss()

    def loss():
        return float(loss_fn(net(x), target))

    loss()
    net.zero_grad()
    gx = net.backward(loss_fn.backward())
    eps = 1e-6
    for (name, p), (_, g) in zip(net.named_parameters(), net.named_grads()):
        for i in rng.choice(p.size, size=min(4, p.size), replace=False):
            old = p.flat[i]
            p.flat[i] = old + eps
            up = loss()
            p.flat[i] = old - eps
            down = loss()
            p.flat[i] = old
            assert abs((up - down) / (2 * eps) - g.flat[i]) < 1e-6, name
    for i in rng.choice(x.size, size=6, replace=False):
        old = x.flat[i]
        x.flat[i] = old + eps
        up = loss()
        x.flat[i] = old - eps
        down = loss()
        x.flat[i] = old
        assert abs((up - down) / (2 * eps) - gx.flat[i]) < 1e-6


def test_parameter_names_follow_torchvision():
    names = [k for k, _ in models.alexnet().named_parameters()]
    assert names == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
                     "features.6.weight", "features.6.bias", "features.8.weight", "features.8.bias",
                     "features.10.weight", "features.10.bias", "classifier.1.weight", "classifier.1.bias",
                     "classifier.4.weight", "classifier.4.bias", "classifier.6.weight", "classifier.6.bias"]
    sd = models.resnet18().state_dict()
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.num_batches_tracked", "fc.bias"):
        assert key in sd


@pytest.mark.parametrize("build,shape,out", [
    (lambda: models.alexnet("torchvision", 10), (1, 3, 224, 224), (1, 10)),
    (lambda: models.alexnet("caffe", 10), (1, 3, 227, 227), (1, 10)),
    (lambda: models.resnet18(7), (1, 3, 64, 64), (1, 7)),
    (lambda: models.mobilenet_v1(5, width=0.25), (1, 3, 64, 64), (1, 5)),
    (lambda: models.segnet_tiny(3, 4), (2, 3, 16, 12), (2, 4, 16, 12)),
])
def test_models_run_forward_and_backward(rng, build, shape, out):
    net = build().eval()
    y = net(rng.standard_normal(shape, dtype=np.float32))
    assert y.shape == out and np.isfinite(y).all()
    net.train()
    y = net(rng.standard_normal(shape, dtype=np.float32))
    gx = net.backward(np.ones_like(y))
    assert gx.shape == shape
    assert all(g is not None for g in net.grads())


def test_no_grad_forward_keeps_nothing_and_matches(rng):
    """Inference mode: same outputs, nothing saved (layer inputs, pool indices), backward refused;
    the mode nests and is restored; a pool paired with an unpool still keeps its indices."""
    net = models.segnet_tiny(3, 4).eval()
    x = rng.standard_normal((2, 3, 16, 12), dtype=np.float32)
    expected = net(x)
    with nn.no_grad():
        assert not nn.is_grad_enabled()
        with nn.no_grad():
            pass
        assert not nn.is_grad_enabled()
        y = net(x)
    assert nn.is_grad_enabled()
    assert np.array_equal(y, expected)
    leaves = [m for _, m in net.named_modules() if not m._modules]
    assert all(m.__dict__.get("_saved") is None for m in leaves)
    pool1, pool2 = net.pool1, net.pool2    # pool2's indices feed unpool2 (SegNet)
    assert pool1.indices is None and not pool1.unpooled
    assert pool2.unpooled and pool2.indices is not None
    with pytest.raises(RuntimeError, match=r"Conv2d.backward: no forward pass saved .*no_grad"):
        net.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match=r"MaxPool2d.backward: no forward pass saved"):
        pool1.backward(np.ones((2, 16, 8, 6), np.float32))
    net.train()
    net(x)
    assert net.backward(np.ones_like(y)).shape == x.shape   # a normal forward saves again


def test_vgg16_shapes():
    net = models.vgg16(10)
    assert sum(p.size for p in net.parameters()) == 138_357_544 - 4096 * 990 - 990   # torchvision: 138.36M at 1000 classes
    assert models.alexnet("caffe").conv2.weight.shape == (256, 48, 5, 5)


# ----------------------------------------------------------------------------- state

def test_save_load_round_trip(tmp_path, rng):
    a, b = _tiny_net(rng), _tiny_net(np.random.default_rng(99))
    a.train()
    a(_x(rng, 3, 2, 6, 6))                     # moves the BN running statistics
    path = os.path.join(tmp_path, "net.npz")
    a.save(path)
    b.load(path)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)


def test_load_state_dict_errors(rng):
    net = _tiny_net(rng)
    sd = OrderedDict(net.state_dict())
    with pytest.raises(KeyError, match=r"missing keys \['7.bias'\]"):
        net.load_state_dict({k: v for k, v in sd.items() if k != "7.bias"})
    with pytest.raises(KeyError, match=r"unexpected keys \['extra.weight'\]"):
        net.load_state_dict({**sd, "extra.weight": np.zeros(3)})
    with pytest.raises(ValueError, match=r"7.weight has shape \(5, 35\) in the state dict but \(5, 36\)"):
        net.load_state_dict({**sd, "7.weight": np.zeros((5, 35))})
    missing, unexpected = net.load_state_dict({"7.bias": np.zeros(5)}, strict=False)
    assert "0.weight" in missing and unexpected == [] and not net[7].bias.any()


def test_to_rejects_unknown_device(rng):
    with pytest.raises(ValueError, match="to: device must be 'cpu' or 'gpu', got 'tpu'"):
        _tiny_net(rng).to("tpu")


# ----------------------------------------------------------------------------- PyTorch parity

def _torch_alexnet(torch):
    tnn = torch.nn

    class TorchAlexNet(tnn.Module):   # torchvision.models.alexnet, written out (no torchvision)
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2), tnn.Conv2d(64, 192, 5, padding=2),
                tnn.ReLU(), tnn.MaxPool2d(3, 2), tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(),
                tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(), tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(),
                tnn.MaxPool2d(3, 2))
            self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
            self.classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(9216, 4096), tnn.ReLU(), tnn.Dropout(),
                                             tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Linear(4096, 1000))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return TorchAlexNet()


def test_alexnet_matches_torch_with_copied_weights(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tnet = _torch_alexnet(torch).eval()
    net = models.alexnet().eval()
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})   # the one-liner
    x = rng.standard_normal((2, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        expected = tnet(torch.from_numpy(x)).numpy()
    assert_close(net(x), expected, np.float32)


def test_one_sgd_step_matches_torch(rng):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(0)
    tnet = tnn.Sequential(tnn.Conv2d(2, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(4 * 3 * 3, 5)).double()
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, **F64), nn.BatchNorm2d(4, **F64), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5, **F64))
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    x, target = rng.standard_normal((3, 2, 6, 6)), np.array([1, 0, 4])
    opt_t = torch.optim.SGD(tnet.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    opt = nn.SGD(net, lr=0.1, momentum=0.9, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(2):                           # two steps: the momentum buffer is used
        opt_t.zero_grad()
        tnn.functional.cross_entropy(tnet(torch.from_numpy(x)), torch.from_numpy(target)).backward()
        opt_t.step()
        loss_fn(net(x), target)
        net.zero_grad()
        net.backward(loss_fn.backward())
        opt.step()
    for (k, v), (kt, vt) in zip(net.state_dict().items(), tnet.state_dict().items()):
        assert k == kt
        assert_close(v, vt.numpy())


# ----------------------------------------------------------------------------- the digits example

def test_train_digits_reduced():
    pytest.importorskip("sklearn")
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "train_digits.py")
    spec = importlib.util.spec_from_file_location("train_digits", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    acc, seconds = mod.train(epochs=3, verbose=False)
    assert acc >= 0.9, acc

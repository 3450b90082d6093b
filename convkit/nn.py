"""Layers over the functional ops: stack them, load weights, run forward, train.

    import convkit.nn as nn
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    loss_fn, opt = nn.CrossEntropyLoss(), nn.SGD(net, lr=0.1, momentum=0.9)
    loss = loss_fn(net(x), y)          # forward
    net.zero_grad(); net.backward(loss_fn.backward()); opt.step()

A layer holds its parameters (and buffers such as batch-norm running statistics) and
what its backward needs from the last forward, nothing else (and not even that inside
``with nn.no_grad():``, the inference mode: every activation is then freed as soon as the
next layer has consumed it, as under ``torch.no_grad()``); `backward(grad_out)` returns
the gradient of the input and stores parameter gradients, read by `grads()` /
`named_grads()` and applied by `SGD.step()`. Parameter names follow PyTorch's
(`features.0.weight`), so a PyTorch ``state_dict`` converted to NumPy loads:

    model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})

Default initialisation is PyTorch's (Kaiming-uniform, bound 1/sqrt(fan_in), for conv and
linear weights and biases), drawn from an explicit ``numpy.random.Generator``: pass
``rng=`` to a layer or model, or seed the module-level default with ``manual_seed``.
"""
from __future__ import annotations

import contextlib
import math
from collections import OrderedDict

import numpy as np

from . import functional as F

_default_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Re-seed the generator that layers created without ``rng=`` draw their weights from."""
    global _default_rng
    _default_rng = np.random.default_rng(seed)


_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Inference mode: forward passes inside the block save nothing for backward (no layer
    inputs, no max-pool indices unless a MaxUnpool2d uses them), so a model's forward holds
    only the activations still in use -- about a fifth less peak memory for AlexNet at batch 16
    (bench/peak_rss.py). backward() after such a forward raises RuntimeError. Nests; restores
    the previous mode on exit."""
    global _grad_enabled
    before, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = before


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``."""
    return _grad_enabled


def _rng(rng):
    return _default_rng if rng is None else rng


def _kaiming_uniform(rng, shape, fan_in, dtype):
    """PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform, a=sqrt(5))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _xp(a):
    """numpy or cupy, whichever module `a` belongs to."""
    if isinstance(a, np.ndarray):
        return np
    import cupy
    return cupy


class Module:
    """Base class: parameters, buffers, children, train/eval, state dicts, save/load."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_grads", {})
        object.__setattr__(self, "training", True)

    # -- registration: attributes that are Modules become children ------------------
    def __setattr__(self, name, value):
        if isinstance(value, Module):
            self._modules[name] = value
        elif name in self._parameters:
            self._parameters[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(table)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def register_parameter(self, name, value):
        self._parameters[name] = value

    def register_buffer(self, name, value):
        self._buffers[name] = value

    # -- running ------------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _save(self, **values):
        """Keep what backward needs from this forward (nothing inside no_grad())."""
        object.__setattr__(self, "_saved", values if _grad_enabled else None)

    def _saved_values(self):
        saved = self.__dict__.get("_saved")
        if saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward pass saved what backward "
                               f"needs (none ran yet, or it ran inside convkit.nn.no_grad())")
        return saved

    def train(self, mode: bool = True):
        object.__setattr__(self, "training", bool(mode))
        for m in self._modules.values():
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # -- parameters and gradients ----------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return list(self._modules.values())

    def named_parameters(self):
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                if p is not None:
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_grads(self):
        """(name, gradient) for every parameter, in parameters() order (None before a backward)."""
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                if p is not None:
                    yield (f"{prefix}.{name}" if prefix else name), m._grads.get(name)

    def grads(self):
        return [g for _, g in self.named_grads()]

    def zero_grad(self):
        for _, m in self.named_modules():
            m._grads.clear()

    def _set_grad(self, name, grad):
        """Accumulate (like PyTorch's .grad) a parameter gradient computed by backward()."""
        if grad is None:
            return
        old = self._grads.get(name)
        self._grads[name] = grad if old is None else old + grad

    # -- state ------------------------------------------------------------------------------
    def state_dict(self):
        """OrderedDict of every parameter and buffer by dotted name (arrays, not copies)."""
        out = OrderedDict()
        for prefix, m in self.named_modules():
            for table in (m._parameters, m._buffers):
                for name, v in table.items():
                    if v is not None:
                        out[f"{prefix}.{name}" if prefix else name] = v
        return out

    def load_state_dict(self, state, strict: bool = True):
        """Copy arrays into the parameters/buffers of the same names and shapes.

        Raises KeyError listing missing and unexpected keys (strict=True), and ValueError
        naming the key and both shapes on a shape mismatch. Values are converted to each
        parameter's dtype and array library. Returns (missing, unexpected) key lists.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, target in own.items():
            if key not in state:
                continue
            value = np.asarray(state[key]) if not hasattr(state[key], "__cuda_array_interface__") else state[key]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"load_state_dict: {key} has shape {tuple(value.shape)} in the state dict "
                                 f"but {tuple(target.shape)} in the model")
            xp = _xp(target)
            target[...] = xp.asarray(value, dtype=target.dtype)
        return missing, unexpected

    def save(self, path):
        """Write state_dict() to a .npz file (arrays copied to host memory)."""
        arrays = {k: (v if isinstance(v, np.ndarray) else v.get()) for k, v in self.state_dict().items()}
        np.savez(path, **arrays)

    def load(self, path, strict: bool = True):
        """Read a .npz written by save() (or any name->array .npz) into this model."""
        with np.load(path) as data:
            return self.load_state_dict({k: data[k] for k in data.files}, strict=strict)

    def to(self, device: str):
        """Move every parameter and buffer to 'cpu' (numpy) or 'gpu' (cupy)."""
        if device not in ("cpu", "gpu"):
            raise ValueError(f"{type(self).__name__}.to: device must be 'cpu' or 'gpu', got {device!r}")
        if device == "gpu":
            try:
                import cupy
            except ImportError:
                raise RuntimeError("to('gpu') needs CuPy: pip install 'convkit[gpu]' "
                                   "(cupy-cuda13x; cupy-cuda12x on CUDA 12)") from None
            move = cupy.asarray
        else:
            move = lambda a: a if isinstance(a, np.ndarray) else a.get()  # noqa: E731
        for _, m in self.named_modules():
            for table in (m._parameters, m._buffers):
                for name, v in table.items():
                    if v is not None:
                        table[name] = move(v)
            m._grads.clear()
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            lines.append("  (" + name + "): " + repr(m).replace("\n", "\n  "))
        return lines[0] + ("\n" + "\n".join(lines[1:]) + "\n)" if len(lines) > 1 else ")")


class Sequential(Module):
    """Children run in order; indexable (net[0]). Named '0', '1', ... or, given one
    OrderedDict of name -> layer (as torch.nn.Sequential), by those names."""

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            self._modules.update(layers[0])
        else:
            for i, layer in enumerate(layers):
                self._modules[str(i)] = layer

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    def backward(self, grad_out):
        for layer in reversed(list(self._modules.values())):
            grad_out = layer.backward(grad_out)
        return grad_out


# ----------------------------------------------------------------------------- convolution

class _ConvNd(Module):
    def __init__(self, nd, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, rng, dtype, transposed=False, output_padding=0):
        super().__init__()
        k = (kernel_size,) * nd if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.output_padding = output_padding
        if transposed:   # PyTorch: weight (C_in, C_out/groups, k...), fan_in from dim 1
            shape = (in_channels, out_channels // groups) + k
            fan_in = (out_channels // groups) * math.prod(k)
        else:
            shape = (out_channels, in_channels // groups) + k
            fan_in = (in_channels // groups) * math.prod(k)
        g = _rng(rng)
        self.register_parameter("weight", _kaiming_uniform(g, shape, fan_in, dtype))
        self.register_parameter("bias", _kaiming_uniform(g, (out_channels,), fan_in, dtype) if bias else None)

    def _args(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class Conv2d(_ConvNd):
    """2-D convolution layer: (N, C_in, H, W) -> (N, C_out, OH, OW); see convkit.conv2d."""

    _fwd, _bwd = staticmethod(F.conv2d), staticmethod(F.conv2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, *, rng=None, dtype=np.float32):
        super().__init__(2, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, rng, dtype)

    def forward(self, x):
        self._save(x=x)
        return type(self)._fwd(x, self.weight, self.bias, **self._args())

    def backward(self, grad_out):
        gx, gw, gb = type(self)._bwd(grad_out, self._saved_values()["x"], self.weight, **self._args())
        self._set_grad("weight", gw)
        if self.bias is not None:
            self._set_grad("bias", gb)
        return gx


class Conv1d(Conv2d):
    """1-D convolution layer: (N, C_in, L) -> (N, C_out, OL); see convkit.conv1d."""

    _fwd, _bwd = staticmethod(F.conv1d), staticmethod(F.conv1d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, *, rng=None, dtype=np.float32):
        _ConvNd.__init__(self, 1, in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, rng, dtype)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution layer; weight (C_in, C_out/groups, kH, kW); see convkit.conv_transpose2d."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, *, rng=None, dtype=np.float32):
        super().__init__(2, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, rng, dtype, transposed=True, output_padding=output_padding)

    def _args(self):
        return dict(super()._args(), output_padding=self.output_padding)

    def forward(self, x):
        self._save(x=x)
        return F.conv_transpose2d(x, self.weight, self.bias, **self._args())

    def backward(self, grad_out):
        gx, gw, gb = F.conv_transpose2d_backward(grad_out, self._saved_values()["x"], self.weight, **self._args())
        self._set_grad("weight", gw)
        if self.bias is not None:
            self._set_grad("bias", gb)
        return gx


class Linear(Module):
    """y = x W^T + b: (..., in_features) -> (..., out_features); see convkit.linear."""

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        g = _rng(rng)
        self.register_parameter("weight", _kaiming_uniform(g, (out_features, in_features), in_features, dtype))
        self.register_parameter("bias", _kaiming_uniform(g, (out_features,), in_features, dtype) if bias else None)

    def forward(self, x):
        self._save(x=x)
        return F.linear(x, self.weight, self.bias)

    def backward(self, grad_out):
        gx, gw, gb = F.linear_backward(grad_out, self._saved_values()["x"], self.weight)
        self._set_grad("weight", gw)
        if self.bias is not None:
            self._set_grad("bias", gb)
        return gx

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


# ----------------------------------------------------------------------------- pooling, resampling

class MaxPool2d(Module):
    """Max pooling; keeps the argmax indices of the last forward (for backward and MaxUnpool2d;
    inside no_grad() only when a MaxUnpool2d uses them)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode
        self.indices, self.unpooled = None, False   # unpooled: a MaxUnpool2d reads the indices

    def forward(self, x):
        self.input_shape = tuple(x.shape)
        args = (x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        if not (_grad_enabled or self.unpooled):
            self.indices = None
            return F.max_pool2d(*args)
        y, self.indices = F.max_pool2d(*args, return_indices=True)
        return y

    def backward(self, grad_out):
        if self.indices is None:
            self._saved_values()   # raises: the forward ran inside no_grad()
        return F.max_pool2d_backward(grad_out, self.indices, self.input_shape)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self._args = dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                          count_include_pad=count_include_pad, divisor_override=divisor_override)

    def forward(self, x):
        self.input_shape = tuple(x.shape)
        return F.avg_pool2d(x, **self._args)

    def backward(self, grad_out):
        return F.avg_pool2d_backward(grad_out, self.input_shape, **self._args)


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        self.input_shape = tuple(x.shape)
        return F.adaptive_avg_pool2d(x, self.output_size)

    def backward(self, grad_out):
        return F.adaptive_avg_pool2d_backward(grad_out, self.input_shape)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class MaxUnpool2d(Module):
    """Max-unpooling paired with the MaxPool2d whose last indices (and input size) it reuses."""

    def __init__(self, pool: MaxPool2d):
        super().__init__()
        object.__setattr__(self, "pool", pool)   # a reference, not a child (no double naming)
        pool.unpooled = True

    def forward(self, x):
        p = self.pool
        return F.max_unpool2d(x, p.indices, p.kernel_size, p.stride, p.padding,
                              output_size=p.input_shape[-2:])

    def backward(self, grad_out):
        return F.max_unpool2d_backward(grad_out, self.pool.indices)


class Upsample(Module):
    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__()
        self._args = dict(size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners)

    def forward(self, x):
        self.input_shape = tuple(x.shape)
        return F.upsample2d(x, **self._args)

    def backward(self, grad_out):
        return F.upsample2d_backward(grad_out, self.input_shape, **self._args)


# ----------------------------------------------------------------------------- normalisation

class BatchNorm2d(Module):
    """Batch norm over (N, H, W) per channel; running statistics are buffers (PyTorch names)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, *, dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.register_parameter("weight", np.ones(num_features, dtype) if affine else None)
        self.register_parameter("bias", np.zeros(num_features, dtype) if affine else None)
        self.register_buffer("running_mean", np.zeros(num_features, dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype))
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64))

    def forward(self, x):
        self._save(x=x, training=self.training)
        if self.training:
            self.num_batches_tracked[...] += 1
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def backward(self, grad_out):
        saved = self._saved_values()
        gx, gw, gb = F.batch_norm_backward(grad_out, saved["x"], self.running_mean, self.running_var,
                                           self.weight, training=saved["training"], eps=self.eps)
        if self.weight is not None:
            self._set_grad("weight", gw)
            self._set_grad("bias", gb)
        return gx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class GroupNorm(Module):
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, *, dtype=np.float32):
        super().__init__()
        self.num_groups, self.eps = num_groups, eps
        self.register_parameter("weight", np.ones(num_channels, dtype) if affine else None)
        self.register_parameter("bias", np.zeros(num_channels, dtype) if affine else None)

    def forward(self, x):
        self._save(x=x)
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def backward(self, grad_out):
        gx, gw, gb = F.group_norm_backward(grad_out, self._saved_values()["x"], self.num_groups, self.weight, self.eps)
        if self.weight is not None:
            self._set_grad("weight", gw)
            self._set_grad("bias", gb)
        return gx


class LocalResponseNorm(Module):
    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self._args = dict(size=size, alpha=alpha, beta=beta, k=k)

    def forward(self, x):
        self._save(x=x)
        return F.local_response_norm(x, **self._args)

    def backward(self, grad_out):
        return F.local_response_norm_backward(grad_out, self._saved_values()["x"], **self._args)

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self._args.items())


# ----------------------------------------------------------------------------- element-wise

class ReLU(Module):
    """max(x, 0). inplace=True (as torchvision's and Caffe's AlexNet use it) writes the result
    into x itself when x is a writable C-contiguous native-endian array, saving an output
    allocation (a page fault per 4 KiB on big maps); otherwise it returns a new array.
    The backward pass needs only the output: relu'(x) = relu'(relu(x))."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, x):
        in_place = (self.inplace and getattr(x, "flags", None) is not None and x.flags.c_contiguous
                    and x.flags.writeable and x.dtype.isnative)
        y = F.relu(x, out=x if in_place else None)
        self._save(y=y)
        return y

    def backward(self, grad_out):
        return F.relu_backward(grad_out, self._saved_values()["y"])


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        self.input_shape = tuple(x.shape)
        return F.flatten(x, self.start_dim, self.end_dim)

    def backward(self, grad_out):
        return grad_out.reshape(self.input_shape)


class Dropout(Module):
    """Zeroes each element with probability p in training (scaling by 1/(1-p)); identity in eval."""

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        self.p = p
        self.rng = np.random.default_rng(_rng(rng).integers(2**63)) if rng is None else rng

    def forward(self, x):
        if not self.training or self.p == 0:
            self._save(mask=None)
            return x
        y, mask = F.dropout(x, self.p, training=True, rng=self.rng, return_mask=True)
        self._save(mask=mask)
        return y

    def backward(self, grad_out):
        mask = self._saved_values()["mask"]
        return grad_out if mask is None else F.dropout_backward(grad_out, mask, self.p)

    def extra_repr(self):
        return f"p={self.p}"


# ----------------------------------------------------------------------------- loss and optimiser

class CrossEntropyLoss:
    """loss = CrossEntropyLoss()(logits (N, C), target (N,) int64); backward() -> grad of logits."""

    def __init__(self, reduction="mean", ignore_index=-100):
        self.reduction, self.ignore_index = reduction, ignore_index

    def __call__(self, logits, target):
        self._logits, self._target = logits, target
        return F.cross_entropy(logits, target, reduction=self.reduction, ignore_index=self.ignore_index)

    def backward(self, grad_out=1.0):
        return F.cross_entropy_backward(grad_out, self._logits, self._target, reduction=self.reduction,
                                        ignore_index=self.ignore_index)


class SGD:
    """Stochastic gradient descent with momentum and weight decay, PyTorch's update rule.

    d = grad + weight_decay * p;  buf = momentum * buf + d (buf = d on the first step);
    p -= lr * buf.  Updates the module's parameter arrays in place.
    """

    def __init__(self, module: Module, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got "
                             f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        self.module, self.lr, self.momentum, self.weight_decay = module, lr, momentum, weight_decay
        self._buffers = {}

    def zero_grad(self):
        self.module.zero_grad()

    def step(self):
        for (name, p), (_, g) in zip(self.module.named_parameters(), self.module.named_grads()):
            if g is None:
                continue
            d = g + self.weight_decay * p if self.weight_decay else g
            if self.momentum:
                buf = self._buffers.get(name)
                buf = d.copy() if buf is None else self.momentum * buf + d
                self._buffers[name] = buf
                d = buf
            p -= (self.lr * d).astype(p.dtype, copy=False)

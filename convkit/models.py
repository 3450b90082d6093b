"""Ready-made networks built from convkit.nn layers (parameter names as torchvision's).

    alexnet(variant='torchvision'|'caffe')   vgg16()   resnet18()   mobilenet_v1()   segnet_tiny()

Every builder takes ``num_classes``, ``rng`` (a numpy Generator for the initial weights;
default: convkit.nn's seeded generator) and ``dtype`` (float32). Weights of the matching
torchvision model load with ``model.load_state_dict({k: v.numpy() for k, v in sd.items()})``.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import nn


class AlexNet(nn.Module):
    """torchvision's AlexNet: features -> AdaptiveAvgPool2d((6, 6)) -> flatten -> classifier.

    Input (N, 3, 224, 224) (any size >= 63 works thanks to the adaptive pool).
    """

    def __init__(self, num_classes=1000, *, rng=None, dtype=np.float32):
        super().__init__()
        c = dict(rng=rng, dtype=dtype)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2, **c), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2, **c), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1, **c), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, **c), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1, **c), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Dropout(0.5, rng=rng), nn.Linear(256 * 6 * 6, 4096, **c), nn.ReLU(inplace=True),
            nn.Dropout(0.5, rng=rng), nn.Linear(4096, 4096, **c), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes, **c))

    def forward(self, x):
        return self.classifier(self.flatten(self.avgpool(self.features(x))))

    def backward(self, grad_out):
        g = self.classifier.backward(grad_out)
        return self.features.backward(self.avgpool.backward(self.flatten.backward(g)))


def _caffe_alexnet(num_classes, rng, dtype):
    """Krizhevsky's AlexNet as in Caffe's bvlc_alexnet: 227x227 input, 96 filters in conv1,
    LRN after conv1/conv2, groups=2 on conv2/4/5 (the two-GPU split). Caffe layer names."""
    c = dict(rng=rng, dtype=dtype)
    lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)  # noqa: E731
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 96, 11, stride=4, **c)), ("relu1", nn.ReLU(inplace=True)), ("norm1", lrn()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=2, **c)), ("relu2", nn.ReLU(inplace=True)), ("norm2", lrn()),
        ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1, **c)), ("relu3", nn.ReLU(inplace=True)),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=2, **c)), ("relu4", nn.ReLU(inplace=True)),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=2, **c)), ("relu5", nn.ReLU(inplace=True)),
        ("pool5", nn.MaxPool2d(3, 2)), ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(256 * 6 * 6, 4096, **c)), ("relu6", nn.ReLU(inplace=True)), ("drop6", nn.Dropout(0.5, rng=rng)),
        ("fc7", nn.Linear(4096, 4096, **c)), ("relu7", nn.ReLU(inplace=True)), ("drop7", nn.Dropout(0.5, rng=rng)),
        ("fc8", nn.Linear(4096, num_classes, **c)),
    ]))


def alexnet(variant="torchvision", num_classes=1000, *, rng=None, dtype=np.float32):
    """AlexNet. variant='torchvision' (224x224 input, torchvision's layers and parameter
    names) or 'caffe' (227x227 input, LRN, grouped conv2/4/5, Caffe layer names)."""
    if variant == "torchvision":
        return AlexNet(num_classes, rng=rng, dtype=dtype)
    if variant == "caffe":
        return _caffe_alexnet(num_classes, rng, dtype)
    raise ValueError(f"alexnet: variant must be 'torchvision' or 'caffe', got {variant!r}")


class VGG(nn.Module):
    """torchvision's VGG (no batch norm): features -> AdaptiveAvgPool2d((7, 7)) -> classifier."""

    def __init__(self, cfg, num_classes=1000, *, rng=None, dtype=np.float32):
        super().__init__()
        c, layers, ch = dict(rng=rng, dtype=dtype), [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, v, 3, padding=1, **c), nn.ReLU(inplace=True)]
                ch = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096, **c), nn.ReLU(inplace=True), nn.Dropout(0.5, rng=rng),
            nn.Linear(4096, 4096, **c), nn.ReLU(inplace=True), nn.Dropout(0.5, rng=rng),
            nn.Linear(4096, num_classes, **c))

    forward = AlexNet.forward
    backward = AlexNet.backward


def vgg16(num_classes=1000, *, rng=None, dtype=np.float32):
    """VGG-16 (configuration D), 224x224 input."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    return VGG(cfg, num_classes, rng=rng, dtype=dtype)


class BasicBlock(nn.Module):
    """ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, in_ch, out_ch, stride=1, *, rng=None, dtype=np.float32):
        super().__init__()
        c = dict(rng=rng, dtype=dtype)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False, **c)
        self.bn1 = nn.BatchNorm2d(out_ch, dtype=dtype)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False, **c)
        self.bn2 = nn.BatchNorm2d(out_ch, dtype=dtype)
        self.relu2 = nn.ReLU(inplace=True)
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False, **c),
                                            nn.BatchNorm2d(out_ch, dtype=dtype))
        else:
            object.__setattr__(self, "downsample", None)

    def forward(self, x):
        main = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu2(main + shortcut)            # the residual add

    def backward(self, grad_out):
        g = self.relu2.backward(grad_out)             # d(main + shortcut) flows to both branches
        g_main = self.conv1.backward(self.bn1.backward(self.relu1.backward(
            self.conv2.backward(self.bn2.backward(g)))))
        g_short = g if self.downsample is None else self.downsample.backward(g)
        return g_main + g_short


class ResNet(nn.Module):
    """torchvision's ResNet with basic blocks; 224x224 input."""

    def __init__(self, blocks=(2, 2, 2, 2), num_classes=1000, *, rng=None, dtype=np.float32):
        super().__init__()
        c = dict(rng=rng, dtype=dtype)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False, **c)
        self.bn1 = nn.BatchNorm2d(64, dtype=dtype)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        ch = 64
        for i, (n, out_ch) in enumerate(zip(blocks, (64, 128, 256, 512))):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock(ch if j == 0 else out_ch, out_ch, stride if j == 0 else 1, **c) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            ch = out_ch
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, num_classes, **c)

    def _stages(self):
        return [self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2, self.layer3,
                self.layer4, self.avgpool, self.flatten, self.fc]

    def forward(self, x):
        for stage in self._stages():
            x = stage(x)
        return x

    def backward(self, grad_out):
        for stage in reversed(self._stages()):
            grad_out = stage.backward(grad_out)
        return grad_out


def resnet18(num_classes=1000, *, rng=None, dtype=np.float32):
    """ResNet-18 (torchvision names: conv1, bn1, layer1.0.conv1, ..., fc)."""
    return ResNet((2, 2, 2, 2), num_classes, rng=rng, dtype=dtype)


def _conv_bn_relu(in_ch, out_ch, kernel, stride, groups, c, dtype):
    return [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False, **c),
            nn.BatchNorm2d(out_ch, dtype=dtype), nn.ReLU(inplace=True)]


def mobilenet_v1(num_classes=1000, width=1.0, *, rng=None, dtype=np.float32):
    """MobileNet v1 (Howard et al. 2017): a 3x3/2 conv, then 13 depthwise-separable blocks
    (3x3 depthwise conv + BN + ReLU, 1x1 pointwise conv + BN + ReLU), global average pool,
    fc. 224x224 input; ``width`` scales every channel count."""
    c = dict(rng=rng, dtype=dtype)
    w = lambda ch: max(8, int(ch * width))  # noqa: E731
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    layers, ch = _conv_bn_relu(3, w(32), 3, 2, 1, c, dtype), w(32)
    for out_ch, stride in plan:
        layers += _conv_bn_relu(ch, ch, 3, stride, ch, c, dtype)          # depthwise
        layers += _conv_bn_relu(ch, w(out_ch), 1, 1, 1, c, dtype)          # pointwise
        ch = w(out_ch)
    return nn.Sequential(OrderedDict([
        ("features", nn.Sequential(*layers)), ("avgpool", nn.AdaptiveAvgPool2d((1, 1))),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(ch, num_classes, **c))]))


def segnet_tiny(in_channels=3, num_classes=8, *, rng=None, dtype=np.float32):
    """A small SegNet-style encoder-decoder for (N, C, H, W) with H, W divisible by 4:
    two conv-BN-ReLU + 2x2 max-pool stages; the decoder max-unpools with the second pool's
    indices (SegNet) and upsamples the first stage with a 4x4/2 transposed conv (FCN/U-Net),
    ending in a 1x1 conv to per-pixel class scores (N, num_classes, H, W)."""
    c = dict(rng=rng, dtype=dtype)
    pool2 = nn.MaxPool2d(2, 2)
    return nn.Sequential(OrderedDict([
        ("enc1", nn.Sequential(*_conv_bn_relu(in_channels, 16, 3, 1, 1, c, dtype))),
        ("pool1", nn.MaxPool2d(2, 2)),
        ("enc2", nn.Sequential(*_conv_bn_relu(16, 32, 3, 1, 1, c, dtype))),
        ("pool2", pool2),
        ("unpool2", nn.MaxUnpool2d(pool2)),
        ("dec2", nn.Sequential(*_conv_bn_relu(32, 16, 3, 1, 1, c, dtype))),
        ("up1", nn.ConvTranspose2d(16, 16, 4, stride=2, padding=1, **c)),
        ("dec1", nn.Sequential(*_conv_bn_relu(16, 16, 3, 1, 1, c, dtype))),
        ("classifier", nn.Conv2d(16, num_classes, 1, **c)),
    ]))


MODELS = {"alexnet": alexnet, "vgg16": vgg16, "resnet18": resnet18, "mobilenet_v1": mobilenet_v1,
          "segnet_tiny": segnet_tiny}

__all__ = ["alexnet", "vgg16", "resnet18", "mobilenet_v1", "segnet_tiny", "AlexNet", "VGG", "ResNet",
           "BasicBlock", "MODELS"]

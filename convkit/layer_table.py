"""The ONE table of real conv layer shapes that the benchmarks, `python -m convkit info`
and (later) the profiler read.

Each entry is one conv layer of a published network at its real input size; FLOP counts
come from convkit._shapes.conv_geometry (the one place the output-size rules live), never
from a formula re-derived here.

    from convkit.layer_table import LAYERS, MODELS, by_model
    for layer in by_model("alexnet_tv"):
        print(layer.name, layer.out_shape(16), layer.flops(16) / 1e9, "GFLOP")

Used by: bench/bench_conv2d.py, convkit/__main__.py   Print: python -m convkit.layer_table
"""
from __future__ import annotations

from dataclasses import dataclass

from ._shapes import conv_geometry


@dataclass(frozen=True)
class ConvLayer:
    """One 2-D convolution: input (N, c_in, h, w), weight (c_out, c_in/groups, kH, kW)."""
    name: str          # "<model>.<layer>", e.g. "alexnet_tv.conv1"
    model: str         # "alexnet_tv", "alexnet_caffe", "resnet18", ...
    c_in: int
    h: int
    w: int
    c_out: int
    kernel: int | tuple  # k or (kH, kW)
    stride: int | tuple
    padding: int | tuple
    groups: int = 1
    dilation: int | tuple = 1
    count: int = 1       # layers of exactly this shape in the model (model sums weight by it)

    def x_shape(self, batch: int) -> tuple:
        return (batch, self.c_in, self.h, self.w)

    @property
    def w_shape(self) -> tuple:
        kh, kw = (self.kernel, self.kernel) if isinstance(self.kernel, int) else self.kernel
        return (self.c_out, self.c_in // self.groups, kh, kw)

    def geometry(self, batch: int):
        """convkit's ConvGeometry for this layer (validates it, too)."""
        return conv_geometry("layer_table", self.x_shape(batch), self.w_shape, self.stride,
                             self.padding, self.dilation, self.groups, 2)

    def out_shape(self, batch: int) -> tuple:
        return self.geometry(batch).out_shape

    def macs(self, batch: int) -> int:
        """Multiply-accumulates of one forward pass (bias adds not counted)."""
        return self.geometry(batch).macs

    def flops(self, batch: int) -> int:
        """Forward FLOPs = 2 * MACs; a backward pass (grad_x + grad_w) is 2 * flops(batch)."""
        return 2 * self.macs(batch)


L = ConvLayer
LAYERS = (
    # AlexNet, torchvision variant (224x224 input, 64-192-384-256-256 filters, no groups)
    L("alexnet_tv.conv1", "alexnet_tv", 3, 224, 224, 64, 11, 4, 2),
    L("alexnet_tv.conv2", "alexnet_tv", 64, 27, 27, 192, 5, 1, 2),
    L("alexnet_tv.conv3", "alexnet_tv", 192, 13, 13, 384, 3, 1, 1),
    L("alexnet_tv.conv4", "alexnet_tv", 384, 13, 13, 256, 3, 1, 1),
    L("alexnet_tv.conv5", "alexnet_tv", 256, 13, 13, 256, 3, 1, 1),
    # AlexNet, Caffe / Krizhevsky variant (227x227 input, two-GPU groups on conv2/4/5)
    L("alexnet_caffe.conv1", "alexnet_caffe", 3, 227, 227, 96, 11, 4, 0),
    L("alexnet_caffe.conv2", "alexnet_caffe", 96, 27, 27, 256, 5, 1, 2, groups=2),
    L("alexnet_caffe.conv3", "alexnet_caffe", 256, 13, 13, 384, 3, 1, 1),
    L("alexnet_caffe.conv4", "alexnet_caffe", 384, 13, 13, 384, 3, 1, 1, groups=2),
    L("alexnet_caffe.conv5", "alexnet_caffe", 384, 13, 13, 256, 3, 1, 1, groups=2),
    # ResNet-18: every 3x3 conv, one entry per distinct shape (224x224 input; the 7x7 stem
    # and the 1x1 downsampling convs are not listed)
    L("resnet18.layer1.conv3x3", "resnet18", 64, 56, 56, 64, 3, 1, 1, count=4),
    L("resnet18.layer2.conv3x3_s2", "resnet18", 64, 56, 56, 128, 3, 2, 1),
    L("resnet18.layer2.conv3x3", "resnet18", 128, 28, 28, 128, 3, 1, 1, count=3),
    L("resnet18.layer3.conv3x3_s2", "resnet18", 128, 28, 28, 256, 3, 2, 1),
    L("resnet18.layer3.conv3x3", "resnet18", 256, 14, 14, 256, 3, 1, 1, count=3),
    L("resnet18.layer4.conv3x3_s2", "resnet18", 256, 14, 14, 512, 3, 2, 1),
    L("resnet18.layer4.conv3x3", "resnet18", 512, 7, 7, 512, 3, 1, 1, count=3),
    # VGG-16 (configuration D, 224x224 input): its 13 3x3 convs, one entry per distinct shape
    L("vgg16.conv1_1", "vgg16", 3, 224, 224, 64, 3, 1, 1),
    L("vgg16.conv1_2", "vgg16", 64, 224, 224, 64, 3, 1, 1),
    L("vgg16.conv2_1", "vgg16", 64, 112, 112, 128, 3, 1, 1),
    L("vgg16.conv2_2", "vgg16", 128, 112, 112, 128, 3, 1, 1),
    L("vgg16.conv3_1", "vgg16", 128, 56, 56, 256, 3, 1, 1),
    L("vgg16.conv3_2", "vgg16", 256, 56, 56, 256, 3, 1, 1, count=2),
    L("vgg16.conv4_1", "vgg16", 256, 28, 28, 512, 3, 1, 1),
    L("vgg16.conv4_2", "vgg16", 512, 28, 28, 512, 3, 1, 1, count=2),
    L("vgg16.conv5_1", "vgg16", 512, 14, 14, 512, 3, 1, 1, count=3),
)
del L

MODELS = tuple(dict.fromkeys(layer.model for layer in LAYERS))   # in table order
BY_NAME = {layer.name: layer for layer in LAYERS}


def by_model(model: str) -> tuple:
    """The layers of one model, in network order (one entry per distinct shape)."""
    return tuple(layer for layer in LAYERS if layer.model == model)


def model_layer_count(model: str) -> int:
    """Conv layers of the model covered by the table (repeated shapes counted)."""
    return sum(layer.count for layer in by_model(model))


if __name__ == "__main__":
    print(f"{'layer':26} {'input':>16} {'weight':>18} {'output (N=1)':>18} {'MMAC':>8} {'count':>5}")
    for layer in LAYERS:
        print(f"{layer.name:26} {str(layer.x_shape(1)[1:]):>16} {str(layer.w_shape):>18} "
              f"{str(layer.out_shape(1)[1:]):>18} {layer.macs(1) / 1e6:8.1f} {layer.count:5}")

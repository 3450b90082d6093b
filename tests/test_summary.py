"""convkit.summary / receptive_field vs the lecture tables and SPEC section 8's examples."""
import pytest

import convkit
import convkit.nn as nn
from convkit import models
from convkit.summary import receptive_field

# lecture file 002, torchvision AlexNet on 3x227x227, weights only:
# name -> (out C, out H/W, memory KB, params k, MACs M); conv4 MACs corrected (145 -> 149.5)
LECTURE_ALEXNET = {
    "features.0": (64, 56, 784, 23, 73), "features.2": (64, 27, 182, 0, 0),
    "features.3": (192, 27, 547, 307, 224), "features.5": (192, 13, 127, 0, 0),
    "features.6": (384, 13, 254, 664, 112), "features.8": (256, 13, 169, 885, 149.5),
    "features.10": (256, 13, 169, 590, 100), "features.12": (256, 6, 36, 0, 0),
    "classifier.1": (4096, None, 16, 37749, 38), "classifier.4": (4096, None, 16, 16777, 17),
    "classifier.6": (1000, None, 4, 4096, 4),
}


def _by_name(rows):
    return {r["name"]: r for r in rows}


def test_alexnet_torchvision_reproduces_the_lecture_table(capsys):
    rows = _by_name(convkit.summary(models.alexnet(), (3, 227, 227), count_bias=False))
    for name, (c, hw, kb, params_k, macs_m) in LECTURE_ALEXNET.items():
        r = rows[name]
        assert r["out_c"] == c, name
        if hw is not None:
            assert r["out_hw"] == (hw, hw), name
        assert round(r["memory_kb"]) == kb, name
        assert round(r["params"] / 1e3) == params_k, name
        assert r["macs"] / 1e6 == pytest.approx(macs_m, abs=0.5 if macs_m != 149.5 else 0.05), name
    assert rows["features.8"]["macs"] == 256 * 13 * 13 * 384 * 9          # not the lecture's 145M
    assert rows["flatten"]["out_c"] == 9216 and round(rows["flatten"]["memory_kb"]) == 36
    conv1 = rows["features.0"]
    assert (conv1["in_c"], conv1["in_hw"], conv1["filters"], conv1["kernel"], conv1["stride"], conv1["pad"]) == \
        (3, (227, 227), 64, (11, 11), (4, 4), (2, 2))
    out = capsys.readouterr().out
    assert "149.5" in out and "37,749" in out and "total" in out


def test_alexnet_caffe_sanity():
    rows = _by_name(convkit.summary(models.alexnet("caffe"), (3, 227, 227), print_table=False))
    assert rows["conv1"]["out_hw"] == (55, 55) and rows["conv1"]["out_c"] == 96
    assert rows["conv2"]["params"] == 256 * 48 * 25 + 256                 # groups=2 halves the weights
    assert rows["conv4"]["macs"] == 384 * 13 * 13 * 192 * 9
    assert rows["pool5"]["out_hw"] == (6, 6)
    assert rows["fc6"]["params"] == 9216 * 4096 + 4096
    assert sum(r["params"] for r in rows.values()) == sum(p.size for p in models.alexnet("caffe").parameters())
    assert "norm1" in rows and "relu1" not in rows                          # ReLU/Dropout rows left out
    assert "relu1" in _by_name(convkit.summary(models.alexnet("caffe"), (3, 227, 227), all_layers=True,
                                               print_table=False))


def test_vgg16_fc6():
    # fc6's weights do not depend on the input size (adaptive pool to 7x7): a 64x64 input keeps it fast
    rows = _by_name(convkit.summary(models.vgg16(), (3, 64, 64), count_bias=False, print_table=False))
    assert round(rows["classifier.0"]["params"] / 1e3) == 102760
    assert rows["features.30"]["out_hw"] == (2, 2) and rows["avgpool"]["out_hw"] == (7, 7)


def test_resnet_stem():
    rows = _by_name(convkit.summary(models.resnet18(), (3, 224, 224), count_bias=False, print_table=False))
    conv1, pool = rows["conv1"], rows["maxpool"]
    assert conv1["out_hw"] == (112, 112) and round(conv1["memory_kb"]) == 3136
    assert round(conv1["params"] / 1e3) == 9 and round(conv1["macs"] / 1e6) == 118
    assert pool["out_hw"] == (56, 56) and round(pool["memory_kb"]) == 784
    assert rows["layer4.1.conv2"]["out_hw"] == (7, 7)
    assert rows["fc"]["receptive_field"] is None


def _convs(dilations, strides=None):
    strides = strides or [1] * len(dilations)
    return [nn.Conv2d(1, 1, 3, stride=s, padding=d, dilation=d) for d, s in zip(dilations, strides)]


def test_receptive_field_two_3x3_convs():
    assert [r for _, r in receptive_field(nn.Sequential(*_convs([1, 1])), (1, 16, 16))] == [3, 5]


def test_receptive_field_first_stride_2():
    assert [r for _, r in receptive_field(nn.Sequential(*_convs([1, 1], [2, 1])), (1, 16, 16))] == [3, 7]


def test_receptive_field_dilated_stack():
    net = nn.Sequential(*_convs([1, 1, 2, 4, 8, 16, 1]), nn.Conv2d(1, 1, 1))
    assert [r for _, r in receptive_field(net, (1, 40, 40))] == [3, 5, 9, 17, 33, 65, 67, 67]


def test_receptive_field_through_residual_blocks():
    rf = dict(receptive_field(models.resnet18(), (3, 64, 64)))
    assert rf["conv1"] == 7 and rf["maxpool"] == 11
    assert rf["layer1.0.conv2"] == 27 and rf["layer1.1.conv1"] == 35       # the sum keeps the main branch's RF


def test_summary_restores_training_mode():
    model = models.alexnet("caffe")
    convkit.summary(model, (3, 227, 227), print_table=False)
    assert all(m.training for _, m in model.named_modules())

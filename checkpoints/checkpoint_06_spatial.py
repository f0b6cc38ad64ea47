"""Checkpoint 06 (spatial): Can I process spatial data like images with convolutional operations?

Passing means your convolution computes the textbook formula for any stride,
padding and kernel shape, responds to the patterns its filters describe
wherever they appear in the image, pools and flattens correctly, and that the
pieces assemble into a CNN that turns a batch of CIFAR-sized images into class
scores with the parameter count the formulas predict. Forward passes only:
chapter 09 makes these layers trainable.
"""

import numpy as np
from _harness import main

from tinytorch import Tensor, manual_seed
from tinytorch.nn import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from tinytorch.nn.functional import conv2d


def _conv_loops(x, w, b, stride, padding):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    OH, OW = (H - kh) // stride + 1, (W - kw) // stride + 1
    out = np.zeros((N, O, OH, OW))
    for n in range(N):
        for o in range(O):
            for y in range(OH):
                for xx in range(OW):
                    window = x[n, :, y * stride:y * stride + kh, xx * stride:xx * stride + kw]
                    out[n, o, y, xx] = np.sum(window * w[o]) + b[o]
    return out


def check_convolution_matches_the_formula():
    """conv2d equals the loop formula for several strides, paddings and kernel sizes."""
    rng = np.random.default_rng(0)
    for stride, padding, k in [(1, 0, 3), (1, 1, 3), (2, 1, 3), (2, 0, 2), (1, 2, 5)]:
        x, w, b = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((4, 3, k, k)), rng.standard_normal(4)
        out = conv2d(Tensor(x), Tensor(w), Tensor(b), stride=stride, padding=padding)
        expected = _conv_loops(x, w, b, stride, padding)
        assert out.shape == expected.shape, \
            f"stride={stride}, padding={padding}, kernel={k}: output {out.shape}, expected {expected.shape}"
        assert np.allclose(out.data, expected, atol=1e-8), \
            f"stride={stride}, padding={padding}, kernel={k}: values differ from the convolution formula"


def check_a_filter_finds_its_pattern_anywhere():
    """A vertical-edge filter fires on the edge of a shape, and moving the shape moves the response."""
    layer = Conv2d(1, 1, 3, padding=1, bias=False)
    layer.weight.data[...] = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
    image = np.zeros((1, 1, 16, 16), dtype=np.float32)
    image[..., 4:10, 4:10] = 1.0
    response = layer(Tensor(image)).data[0, 0]
    assert response[7, 3] > 0 and response[7, 10] < 0, "the edge filter does not respond at the left/right edges"
    assert response[7, 6] == 0 and response[0, 0] == 0, "the edge filter responds inside the flat square or background"
    moved = layer(Tensor(np.roll(image, (3, 2), axis=(2, 3)))).data[0, 0]
    assert np.allclose(moved[3:, 2:], response[:-3, :-2]), \
        "shifting the image did not shift the response: convolution must treat every position alike"


def check_pooling_summarises_windows():
    """MaxPool2d and AvgPool2d give each window's max and mean, per channel, and halve the map."""
    x = np.arange(2 * 16, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 1] *= -1
    maxed, averaged = MaxPool2d(2)(Tensor(x)).data, AvgPool2d(2)(Tensor(x)).data
    assert maxed.shape == (1, 2, 2, 2), f"MaxPool2d(2) on (1, 2, 4, 4) gave {maxed.shape}, expected (1, 2, 2, 2)"
    assert maxed[0, 0].tolist() == [[5, 7], [13, 15]], f"max pooling of 0..15 gave {maxed[0, 0].tolist()}"
    assert maxed[0, 1].tolist() == [[-16, -18], [-24, -26]], "max pooling mixed up channels or took the minimum"
    assert averaged[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]], f"average pooling gave {averaged[0, 0].tolist()}"
    assert MaxPool2d(2)(Tensor(np.zeros((3, 4, 13, 13)))).shape == (3, 4, 6, 6), "pooling a 13x13 map by 2 must give 6x6"


def check_a_cnn_classifies_a_batch_of_images():
    """A conv-pool-conv-pool-flatten-linear CNN maps 64 CIFAR-sized images to 10 scores each."""
    manual_seed(0)
    model = Sequential(Conv2d(3, 32, 3), ReLU(), MaxPool2d(2), Conv2d(32, 64, 3), ReLU(), MaxPool2d(2),
                       Flatten(), Linear(2304, 256), ReLU(), Linear(256, 10))
    images = Tensor(np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32))
    scores = model(images)
    assert scores.shape == (64, 10), f"the CNN produced {scores.shape}, expected (64, 10)"
    assert scores.dtype == np.float32, f"the CNN's output is {scores.dtype}; float32 layers should give float32"
    assert np.isfinite(scores.data).all(), "the CNN produced non-finite scores"
    assert np.ptp(scores.data, axis=0).max() > 0, "every image got the same scores: the input is being ignored"
    count = sum(p.numel() for p in model.parameters())
    expected = (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (2304 * 256 + 256) + (256 * 10 + 10)
    assert count == expected, f"the CNN has {count} parameters, the formulas give {expected}"


def check_convolution_shares_weights_across_images():
    """Each image of a batch is convolved independently with the same filters."""
    manual_seed(1)
    layer = Conv2d(3, 4, 3, stride=2, padding=1)
    batch = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    together = layer(Tensor(batch)).data
    for n in range(3):
        alone = layer(Tensor(batch[n:n + 1])).data
        assert np.allclose(together[n], alone[0], atol=1e-5), f"image {n} came out differently inside the batch"


if __name__ == "__main__":
    main(globals())

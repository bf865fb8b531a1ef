"""usable_vision: image sources (digits, cifar10, fashion_mnist), views (crops, channels,
frequencies) and image decoders (resnet18, timm:<model>, torchvision:<model>, cnn_plus, cnn_minus).

RINE paper section 4.2 / figure A3 and the thesis's section 2.3 / figure 2.3. The ``mlp`` decoder
(plugin usable_mlp) also takes images: it flattens them. This module only declares the entries;
torch, torchvision and timm load when one is created.
"""
import inspect
from typing import Annotated, Literal

from usable import hookimpl


def parse_subset(text) -> int | str:
    """balanced_subset: 0 (off), a number N, or 'test' (the size of the test split)."""
    t = str(text).strip().lower()
    if t in ("", "0", "none", "off", "false"):
        return 0
    if t == "test":
        return "test"
    n = int(t)
    if n < 0:
        raise ValueError("must be >= 0")
    return n


parse_subset.__name__ = "int or 'test'"


def _view_options(
        normalize: Annotated[bool, "standardise each channel with the training split's mean and sd"] = True,
        balanced_subset: Annotated[str, parse_subset, "exactly class-balanced training subset of N images (N a "
                                   "multiple of the classes), or 'test' for the size of the test split; 0 = the "
                                   "whole training split"] = 0,
        subset_seed: Annotated[int, "seed choosing the balanced subset"] = 0,
        view: Annotated[Literal["none", "crops", "channels", "frequency"], "split each image into two aligned sources"] = "none",
        width: Annotated[int, "view=crops: crop width w in pixels (left = first w columns, right = last w)"] = 0,
        mode: Annotated[Literal["mask", "cut"], "view=crops: mask (outside pixels set to the channel mean) or cut "
                        "(smaller image)"] = "mask",
        a: Annotated[str, "view=channels: first source's channel (red|green|blue or index)"] = "red",
        b: Annotated[str, "view=channels: second source's channel"] = "blue",
        cutoff: Annotated[int, "view=frequency: low-pass keeps the central k×k of the shifted spectrum"] = 0):
    """The options every image source shares (subset → normalize → view, in that order)."""


def image_source(factory):
    """The factory's own parameters plus the shared view options, as one declared signature."""
    own = [p for p in inspect.signature(factory).parameters.values() if p.kind != p.VAR_KEYWORD]
    factory.__signature__ = inspect.Signature(own + list(inspect.signature(_view_options).parameters.values()))
    return factory


Root = Annotated[str, "dataset folder [$USABLE_DATA or ~/.cache/usable/data]"]
Download = Annotated[bool, "download the files if missing (needs a network)"]


@image_source
def make_digits(test_fraction: Annotated[float, "fraction of each class held out for testing"] = 0.2,
                split_seed: Annotated[int, "seed of the stratified train/test split"] = 0, **view):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes; no files needed)."""
    from .sources import image_source_data
    return image_source_data("digits", dict(test_fraction=test_fraction, split_seed=split_seed), view)


@image_source
def make_cifar10(root: Root = "", download: Download = False,
                 verify: Annotated[bool, "check the files' md5 sums against the official release (false: any copy in "
                                   "the standard format, read with an unpickler that refuses code)"] = True, **view):
    """CIFAR-10 (32×32 colour, 10 classes) via torchvision from <root>/cifar-10-batches-py."""
    from .sources import image_source_data
    return image_source_data("cifar10", dict(root=root or None, download=download, verify=verify), view)


@image_source
def make_fashion_mnist(root: Root = "", download: Download = False, **view):
    """Fashion-MNIST (28×28 grey, 10 classes) via torchvision from <root>/FashionMNIST/raw."""
    from .sources import image_source_data
    return image_source_data("fashion_mnist", dict(root=root or None, download=download), view)


def resnet18(width: Annotated[int, "channels of the first stage (64 = standard)"] = 64):
    """CIFAR ResNet-18 (3×3 stem, stride 1, no max-pool); any input size and channel count."""
    from .decoders import ResNet18
    return ResNet18(width)


def cnn_plus(widths: Annotated[list[int], "block widths d1+d2+d3"] = (64, 128, 256)):
    """The thesis CNN f+ (residual conv blocks, 2×2 max-pools, global max-pool, linear head)."""
    from .decoders import CNNPlus
    return CNNPlus(widths)


def cnn_minus(widths: Annotated[list[int], "block widths d_l/4"] = (16, 32, 64)):
    """The thesis CNN f− (5×5 conv, 3×3 max-pool blocks, linear head)."""
    from .decoders import CNNMinus
    return CNNMinus(widths)


def timm(model: Annotated[str, "timm model name, e.g. resnet18, mobilenetv3_small_050"],
         drop_rate: Annotated[float, "dropout before the classifier"] = 0.0,
         img_size: Annotated[Literal["auto", "true", "false"], "pass the input size to the model (auto: where it "
                             "takes one)"] = "auto"):
    """Any timm model by name (random init, no download): timm:<model>."""
    from .decoders import Timm
    return Timm(model, drop_rate, img_size)


def torchvision_model(model: Annotated[str, "torchvision classification model name, e.g. resnet18, mobilenet_v3_small"]):
    """Any torchvision classification model by name (random init, no download): torchvision:<model>.

    The plain torchvision module (not a usable.Network), so checkpoints of ``model.state_dict()``
    from your own training load as they are (``nc:checkpoint=PATH``)."""
    from .decoders import Torchvision
    return Torchvision(model)


@hookimpl
def register_sources(register):
    register("digits", make_digits)
    register("cifar10", make_cifar10)
    register("fashion_mnist", make_fashion_mnist)


@hookimpl
def register_decoders(register):
    for factory in (resnet18, cnn_plus, cnn_minus):
        register(factory.__name__, factory)
    register("timm", timm, positional="model")
    register("torchvision", torchvision_model, positional="model")

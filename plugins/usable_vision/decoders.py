"""Image decoders, each built as a ``usable.Network`` of named blocks (what nc and dib address).

- ``resnet18``: the CIFAR ResNet-18 (3×3 stride-1 stem, no max-pool) from torchvision's own
  BasicBlock; blocks stem, layer1..layer4, pool, head. Any input size and channel count.
- ``cnn_plus`` / ``cnn_minus``: the thesis's f+ and f− (Cheong 2025, section 2.3, figure 2.3);
  blocks block1..block3, head. Convolutions have no bias (batch norm follows each).
- ``timm:<model>``: any timm model by name, random init, ``num_classes``/``in_chans`` from the
  data; blocks features (forward_features) and head (forward_head).
- ``torchvision:<model>``: any torchvision classification model by name, random init,
  ``num_classes`` from the data; the plain torchvision module (its own state-dict keys, so a
  checkpoint of a network trained elsewhere loads), addressed by module path (``layer3``).
"""
from __future__ import annotations

import torch
from torch import nn

from usable import Network, SpecError, require


def _image_shape(in_shape, who: str) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise SpecError(f"decoder {who} needs image sources shaped (C, H, W); got {tuple(in_shape)}. "
                        "Use an image source (digits, cifar10, fashion_mnist) or the mlp decoder.")
    return tuple(int(s) for s in in_shape)


def _conv_bn(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    # no bias: the batch norm right after it has its own shift (thesis section 2.3)
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out)]


def _pool(k: int, h: int, w: int) -> tuple[nn.Module, int, int]:
    """k×k max-pool with stride k; on a map smaller than k it pools over what there is (so small
    inputs such as 8×8 digits or cut crops still work); CIFAR/Fashion sizes are unaffected."""
    kh, kw = min(k, h), min(k, w)
    return nn.MaxPool2d((kh, kw), stride=(kh, kw)), h // kh, w // kw


# ------------------------------------------------------------------------------------ thesis CNNs
class ResidualConv(nn.Module):
    """x ← ReLU(x + BN(conv3×3(x))): the skip half of an f+ block (width unchanged)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv, self.bn = _conv_bn(c, c, 3)

    def forward(self, x):
        return torch.relu(x + self.bn(self.conv(x)))


class CNNPlus:
    """f+: three blocks x ← ReLU(x + BN(conv3×3(x))); x ← ReLU(maxpool2×2(BN(conv3×3(x) → d_l))),
    then global max-pool and a linear head."""

    def __init__(self, widths=(64, 128, 256)):
        self.widths = list(widths)

    def build(self, in_shape, n_out) -> Network:
        c, h, w = _image_shape(in_shape, "cnn_plus")
        blocks = []
        for l, d in enumerate(self.widths, start=1):
            pool, h, w = _pool(2, h, w)
            blocks.append((f"block{l}", nn.Sequential(ResidualConv(c), *_conv_bn(c, d, 3), pool, nn.ReLU())))
            c = d
        blocks.append(("head", nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c, n_out))))
        return Network(blocks)

    def __repr__(self):
        return f"CNNPlus(widths={self.widths})"


class CNNMinus:
    """f−: three blocks x ← ReLU(maxpool3×3(BN(conv5×5(x) → d_l/4))), then a linear head on the
    flattened map (1×1 for CIFAR-10 and Fashion-MNIST, where the thesis drops the last pool)."""

    def __init__(self, widths=(16, 32, 64)):
        self.widths = list(widths)

    def build(self, in_shape, n_out) -> Network:
        c, h, w = _image_shape(in_shape, "cnn_minus")
        blocks = []
        for l, d in enumerate(self.widths, start=1):
            pool, h, w = _pool(3, h, w)
            blocks.append((f"block{l}", nn.Sequential(*_conv_bn(c, d, 5), pool, nn.ReLU())))
            c = d
        blocks.append(("head", nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, n_out))))
        return Network(blocks)

    def __repr__(self):
        return f"CNNMinus(widths={self.widths})"


# ------------------------------------------------------------------------------------ ResNet-18
class ResNet18:
    """CIFAR ResNet-18: conv3×3(stride 1)-BN-ReLU stem, no max-pool, 4 stages of 2 BasicBlocks
    (widths w, 2w, 4w, 8w; strides 1, 2, 2, 2), global average pool, linear head."""

    def __init__(self, width: int = 64):
        self.width = int(width)

    def build(self, in_shape, n_out) -> Network:
        from torchvision.models.resnet import BasicBlock
        c, _, _ = _image_shape(in_shape, "resnet18")
        w = self.width
        blocks = [("stem", nn.Sequential(nn.Conv2d(c, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()))]
        c_in = w
        for k, (planes, stride) in enumerate([(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)], start=1):
            down = None
            if stride != 1 or c_in != planes:
                down = nn.Sequential(nn.Conv2d(c_in, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
            blocks.append((f"layer{k}", nn.Sequential(BasicBlock(c_in, planes, stride, down), BasicBlock(planes, planes))))
            c_in = planes
        blocks += [("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
                   ("head", nn.Linear(c_in, n_out))]
        net = Network(blocks)
        for m in net.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        return net

    def __repr__(self):
        return f"ResNet18(width={self.width})"


# ------------------------------------------------------------------------------------ timm
class _TimmPart(nn.Module):
    """One half of a timm model. Both halves hold the same model (parameters are shared, so they
    are counted and optimised once); ``Network.suffix`` copies give the head its own model."""

    def __init__(self, model: nn.Module, part: str):
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x):
        return self.model.forward_features(x) if self.part == "features" else self.model.forward_head(x)


class Timm:
    def __init__(self, model: str, drop_rate: float = 0.0, img_size: str = "auto"):
        timm = require("timm", extra="vision", what="decoder timm")
        if not timm.is_model(model):
            close = timm.list_models(f"*{model}*")[:8]
            hint = f" Close names: {', '.join(close)}." if close else ""
            raise SpecError(f"decoder timm: unknown timm model {model!r}.{hint} "
                            "List them with python -c \"import timm; print(timm.list_models())\".")
        self.model, self.drop_rate, self.img_size = model, float(drop_rate), img_size

    def _create(self, c, h, w, n_out):
        timm = require("timm", extra="vision", what="decoder timm")
        kw = dict(pretrained=False, num_classes=n_out, in_chans=c, drop_rate=self.drop_rate)
        if self.img_size == "true" or (self.img_size == "auto" and h * w > 0):
            try:  # vision transformers take the image size; convolutional models refuse the keyword
                return timm.create_model(self.model, img_size=(h, w), **kw)
            except TypeError:
                if self.img_size == "true":
                    raise
        return timm.create_model(self.model, **kw)

    def build(self, in_shape, n_out) -> Network:
        c, h, w = _image_shape(in_shape, f"timm:{self.model}")
        m = self._create(c, h, w, n_out)
        self._check_input(m, c, h, w)
        if not (hasattr(m, "forward_features") and hasattr(m, "forward_head")):
            return Network([("model", m)])
        return Network([("features", _TimmPart(m, "features")), ("head", _TimmPart(m, "head"))])

    def _check_input(self, m: nn.Module, c: int, h: int, w: int) -> None:
        """One eval-mode forward on a blank image, so a model that cannot take this size fails here
        with a clear message rather than mid-training."""
        m.eval()
        try:
            with torch.no_grad():
                m(torch.zeros(1, c, h, w))
        except RuntimeError as exc:
            raise SpecError(f"decoder timm:{self.model} cannot take {c}×{h}×{w} images ({exc}). Choose a model "
                            "that downsamples less (e.g. timm:resnet18, or resnet18 / cnn_plus), or larger "
                            "inputs (crops with mode=mask keep the full image size).") from None
        finally:
            m.train()

    def __repr__(self):
        return f"Timm({self.model!r})"


# ------------------------------------------------------------------------------------ torchvision
class Torchvision:
    """``torchvision.models.get_model(model, weights=None, num_classes=n_out)``: no download."""

    def __init__(self, model: str):
        import difflib

        import torchvision
        names = torchvision.models.list_models(module=torchvision.models)  # classification models only
        if model not in names:
            close = difflib.get_close_matches(model, names, n=6, cutoff=0.5)
            hint = f" Close names: {', '.join(close)}." if close else ""
            raise SpecError(f"decoder torchvision: unknown classification model {model!r}.{hint} List them with "
                            "python -c \"import torchvision; print(torchvision.models.list_models(torchvision.models))\".")
        self.model = model

    def build(self, in_shape, n_out) -> nn.Module:
        import torchvision
        c, h, w = _image_shape(in_shape, f"torchvision:{self.model}")
        if c != 3:
            raise SpecError(f"decoder torchvision:{self.model} takes 3-channel images, got {c} channel(s); use "
                            "resnet18, cnn_plus or timm:<model> (which adapt to the channel count), or a colour source")
        m = torchvision.models.get_model(self.model, weights=None, num_classes=int(n_out))
        m.eval()
        try:
            with torch.no_grad():
                m(torch.zeros(1, c, h, w))
        except (RuntimeError, ValueError) as exc:
            raise SpecError(f"decoder torchvision:{self.model} cannot take {c}×{h}×{w} images "
                            f"({str(exc).splitlines()[0][:160]}); choose larger inputs or another model") from None
        finally:
            m.train()
        return m

    def __repr__(self):
        return f"Torchvision({self.model!r})"


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

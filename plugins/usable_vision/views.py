"""Views: two aligned sources cut from one image tensor (RINE paper section 4.2, figure A3).

Every function takes float images shaped (N, C, H, W) and returns new tensors; the training
split decides any statistic (the crop fill value) so that the test split never leaks into it.

- ``crops``: left crop = the first ``width`` columns, right crop = the last ``width`` columns.
  ``mode="mask"`` keeps the full image size and sets the pixels outside the crop to the
  per-channel training mean (what a decoder sees as "no information"); ``mode="cut"`` returns the
  smaller C×H×width images. Two crops of width w of a W-wide image share max(0, 2w − W) columns.
- ``channels``: one colour channel per source (kept as a 1-channel image).
- ``frequency``: low-pass = the central k×k block of the centred (fftshift-ed) 2-D spectrum of
  each channel, high-pass = everything else. Computed in float64 on float input, so nothing wraps
  around or truncates as it would with uint8 pixels; low + high reconstructs the image exactly.
"""
from __future__ import annotations

from typing import Sequence

import torch

from usable import SpecError

VIEWS = ("none", "crops", "channels", "frequency")
CROP_MODES = ("mask", "cut")
CHANNEL_NAMES = {"red": 0, "r": 0, "green": 1, "g": 1, "blue": 2, "b": 2, "gray": 0, "grey": 0}


def _check_images(x: torch.Tensor, what: str) -> None:
    if x.ndim != 4:
        raise SpecError(f"{what} needs images shaped (N, C, H, W); got a tensor of shape {tuple(x.shape)}")


def crop_fill(x_train: torch.Tensor) -> torch.Tensor:
    """Per-channel mean of the training images, shaped (1, C, 1, 1): the value of 'no pixel'."""
    return x_train.double().mean(dim=(0, 2, 3), keepdim=True).to(x_train.dtype)


def crops(x: torch.Tensor, width: int, mode: str = "mask",
          fill: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left crop (first ``width`` columns) and right crop (last ``width`` columns) of images x."""
    _check_images(x, "view=crops")
    W = x.shape[-1]
    if not 1 <= int(width) <= W:
        raise SpecError(f"view=crops: width={width} is outside 1..{W} (the image is {W} pixels wide)")
    if mode not in CROP_MODES:
        raise SpecError(f"view=crops: mode={mode!r}; choose one of {', '.join(CROP_MODES)}")
    w = int(width)
    if mode == "cut":
        return x[..., :w].clone(), x[..., W - w:].clone()
    fill = crop_fill(x) if fill is None else fill.to(x.dtype)
    left = x.clone()
    right = x.clone()
    left[..., w:] = fill.expand_as(left[..., w:])
    right[..., :W - w] = fill.expand_as(right[..., :W - w])
    return left, right


def channel_index(name: str | int, n_channels: int) -> int:
    """'red'/'green'/'blue' (or an index) -> channel index, checked against the image's channels."""
    text = str(name).strip().lower()
    if text.isdigit():
        idx = int(text)
    elif text in CHANNEL_NAMES:
        idx = CHANNEL_NAMES[text]
    else:
        raise SpecError(f"view=channels: unknown channel {name!r}; use red, green, blue or an index 0..{n_channels - 1}")
    if idx >= n_channels:
        raise SpecError(f"view=channels: channel {name!r} (index {idx}) does not exist; these images have "
                        f"{n_channels} channel(s). Channel views need colour images (e.g. cifar10).")
    return idx


def channels(x: torch.Tensor, a: str | int, b: str | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel a and channel b as two 1-channel images."""
    _check_images(x, "view=channels")
    ia, ib = channel_index(a, x.shape[1]), channel_index(b, x.shape[1])
    if ia == ib:
        raise SpecError(f"view=channels: a={a!r} and b={b!r} name the same channel; pick two different ones")
    return x[:, ia:ia + 1].clone(), x[:, ib:ib + 1].clone()


def lowpass_mask(h: int, w: int, cutoff: int) -> torch.Tensor:
    """Boolean (H, W) mask of the central cutoff×cutoff block of an fftshift-ed spectrum."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    ch, cw = h // 2, w // 2  # where fftshift puts frequency 0
    r0, c0 = ch - cutoff // 2, cw - cutoff // 2
    mask[r0:r0 + cutoff, c0:c0 + cutoff] = True
    return mask


def frequency(x: torch.Tensor, cutoff: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-pass and high-pass parts of images x (per channel), low + high = x.

    The central block is not conjugate-symmetric for even ``cutoff``; taking the real part of the
    inverse transform (as for any real image) then weighs its unpaired edge frequencies by 1/2.
    """
    _check_images(x, "view=frequency")
    H, W = x.shape[-2:]
    if not 1 <= int(cutoff) <= min(H, W):
        raise SpecError(f"view=frequency: cutoff={cutoff} is outside 1..{min(H, W)} for {H}×{W} images")
    spec = torch.fft.fftshift(torch.fft.fft2(x.double()), dim=(-2, -1))
    mask = lowpass_mask(H, W, int(cutoff)).to(spec.device)
    def back(s):
        return torch.fft.ifft2(torch.fft.ifftshift(s, dim=(-2, -1))).real.to(x.dtype)
    return back(spec * mask), back(spec * ~mask)


def split_views(x_train: torch.Tensor, x_test: torch.Tensor, view: str, *, width: int | None = None,
                mode: str = "mask", a: str = "red", b: str = "blue", cutoff: int | None = None,
                name: str = "image") -> tuple[list[str], list[torch.Tensor], list[torch.Tensor]]:
    """Turn one image source into its views: (names, train tensors, test tensors)."""
    if view not in VIEWS:
        raise SpecError(f"view={view!r}; choose one of {', '.join(VIEWS)}")
    if view == "none":
        return [name], [x_train], [x_test]
    if view == "crops":
        if width is None:
            raise SpecError(f"view=crops needs width=W (1..{x_train.shape[-1]}), e.g. view=crops,width=4")
        fill = crop_fill(x_train)
        tr, te = crops(x_train, width, mode, fill), crops(x_test, width, mode, fill)
        return ["left", "right"], list(tr), list(te)
    if view == "channels":
        tr, te = channels(x_train, a, b), channels(x_test, a, b)
        return [str(a), str(b)], list(tr), list(te)
    if cutoff is None:
        raise SpecError(f"view=frequency needs cutoff=k (1..{min(x_train.shape[-2:])}), e.g. view=frequency,cutoff=8")
    tr, te = frequency(x_train, cutoff), frequency(x_test, cutoff)
    return ["low", "high"], list(tr), list(te)


def overlap_columns(width: int, image_width: int) -> int:
    """Columns shared by the left and right crops: max(0, 2w − W)."""
    return max(0, 2 * int(width) - int(image_width))


__all__: Sequence[str] = ("VIEWS", "crops", "channels", "frequency", "split_views", "lowpass_mask",
                          "crop_fill", "overlap_columns")

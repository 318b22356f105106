"""The one input check behind every public entry (attacks, evaluation, explain, certify,
detection): images, labels and eps are checked once per call, never per attack step.

- images: a floating tensor of shape (N, C, H, W) with values in [0, 1], no NaN or inf (the
  offending rows are named). float64 images for a float32 model are refused with the fix
  (``images.float()``) rather than converted: a silent copy would change the dtype of what an
  attack returns and double the memory of a large set.
- labels: a 1-D integer tensor with one label per image, each in ``[0, num_classes)``.
- eps: a finite number >= 0; a Linf eps on [0, 1] images is below 1 (8 written for 8/255 is
  the usual slip, and it would let every pixel take any value).

Every failure is one `robustlab.errors.InputError` line (a ``ValueError``) saying what
was wrong and what to do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from robustlab.errors import InputError

SHOWN_ROWS = 5  # rows named in a message before "and N more"


def row_list(rows: torch.Tensor) -> str:
    """``"rows 3, 17"`` (or ``"row 3"``, ``"rows 1, 2, 3, 4, 5 and 12 more"``) for a bool mask
    or an index tensor."""
    index = rows.nonzero().flatten() if rows.dtype == torch.bool else rows.flatten()
    shown = ", ".join(str(int(i)) for i in index[:SHOWN_ROWS])
    more = f" and {len(index) - SHOWN_ROWS} more" if len(index) > SHOWN_ROWS else ""
    return f"{'row' if len(index) == 1 else 'rows'} {shown}{more}"


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of the model's first floating parameter or buffer (None: stateless)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def check_images(
    images: torch.Tensor,
    ndim: int | None = 4,
    dtype: torch.dtype | None = None,
    unit_range: bool = True,
) -> torch.Tensor:
    """``images`` unchanged, or InputError unless they are a floating tensor of ``ndim``
    dimensions (None: any, at least 1) without NaN/inf, in [0, 1] (unless ``unit_range`` is
    False: detectors score any input), of ``dtype`` when given (the model's)."""
    if not torch.is_tensor(images) or not images.is_floating_point():
        got = images.dtype if torch.is_tensor(images) else type(images).__name__
        raise InputError(
            f"images must be a float tensor in [0, 1], got {got}; convert uint8 images with "
            "images.float() / 255"
        )
    if (ndim is not None and images.ndim != ndim) or images.ndim < 1:
        fix = " (add the channel axis with images.unsqueeze(1))" if images.ndim == 3 else ""
        raise InputError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}{fix}")
    if dtype is not None and images.dtype != dtype:
        raise InputError(
            f"images are {images.dtype} but the model computes in {dtype}: pass "
            f"images.to({dtype}) (robustlab does not convert them for you)"
        )
    if not images.numel():
        return images
    bad = ~torch.isfinite(images.detach()).flatten(1).all(1) if images.ndim > 1 else None
    if bad is not None and bad.any():
        raise InputError(
            f"images hold NaN or inf values in {row_list(bad)}: drop or repair those rows "
            "(an input error, not the model's gradient masking)"
        )
    low, high = float(images.min()), float(images.max())
    if unit_range and (low < 0 or high > 1):
        raise InputError(
            f"images must lie in [0, 1], got values in [{low:g}, {high:g}]; undo any "
            "normalisation (models normalise inside; for an attack on normalised inputs call "
            "attack.set_normalization_used(mean, std)) or scaling such as * 255"
        )
    return images


def check_labels(labels: torch.Tensor, n: int, num_classes: int | None = None) -> torch.Tensor:
    """``labels`` unchanged, or InputError unless they are 1-D integers, ``n`` of them, each in
    ``[0, num_classes)`` (when given)."""
    if not torch.is_tensor(labels) or labels.dtype.is_floating_point or labels.is_complex():
        got = labels.dtype if torch.is_tensor(labels) else type(labels).__name__
        raise InputError(f"labels must be an integer tensor (N,), got {got}: pass labels.long()")
    if labels.dtype == torch.bool or labels.ndim != 1 or len(labels) != n:
        raise InputError(
            f"labels must be int64 of shape ({n},), one class index per image, got "
            f"{labels.dtype} of shape {tuple(labels.shape)}"
        )
    if num_classes is not None and n:
        outside = (labels < 0) | (labels >= num_classes)
        if outside.any():
            raise InputError(
                f"labels must lie in [0, {num_classes}) (the model has {num_classes} outputs), "
                f"got {labels[outside][0].item()} in {row_list(outside.cpu())}: check the data "
                "set and the model's num_classes"
            )
    return labels


def check_eps(eps: float, name: str = "eps") -> float:
    """``eps`` as a float, or InputError unless it is a finite number >= 0."""
    value = float(eps) if isinstance(eps, int | float) and not isinstance(eps, bool) else None
    if value is None or not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number >= 0, got {eps!r}")
    return value


def check_eps_grid(eps_grid: Iterable[float]) -> list[float]:
    """The grid as floats, or InputError unless every eps is finite and >= 0."""
    if isinstance(eps_grid, int | float | str) or eps_grid is None:
        raise InputError(f"eps_grid must be a list of numbers, e.g. [0.05, 0.1], got {eps_grid!r}")
    return [check_eps(eps, "every eps of eps_grid") for eps in eps_grid]


LINF_UNIT_RADIUS = 1.0  # a Linf radius this large on [0, 1] images allows any image at all


def check_linf_radii(eps_grid: Iterable[float]) -> None:
    """InputError for a Linf radius >= 1 on [0, 1] images: it was written in 0-255 units."""
    large = [eps for eps in eps_grid if float(eps) >= LINF_UNIT_RADIUS]
    if large:
        raise InputError(
            f"Linf eps {large[0]!r} is not a radius in [0, 1] pixel units (at eps >= 1 any "
            f"image is reachable): eps is in [0, 1] pixel units, write 8/255, not 8"
        )


def as_eps_grid(eps_grid: float | Iterable[float]) -> list[float]:
    """``eps_grid`` as a list: a single number is a one-element grid; the values are checked
    by `check_eps_grid`."""
    if isinstance(eps_grid, int | float) and not isinstance(eps_grid, bool):
        return [eps_grid]
    if torch.is_tensor(eps_grid):
        return [float(e) for e in eps_grid.flatten()]
    return check_eps_grid(eps_grid)


@torch.no_grad()
def output_classes(model: nn.Module, images: torch.Tensor) -> int | None:
    """The number of logits ``model`` returns, from one eval-mode forward of one image (the
    model's modes are restored); None for no images.

    Raises:
        InputError: the model is on the meta device, fails on the images (e.g. 3-channel
            weights on 1-channel images), or returns anything but a (1, classes) tensor.
    """
    if not len(images):
        return None
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else images.device
    if device.type == "meta":
        raise InputError(
            "the model's weights are on the meta device (no values): load its weights, e.g. "
            "model.to_empty(device='cpu') then load_state_dict, before evaluating it"
        )
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        out = model(images[:1].to(device))
    except (RuntimeError, ValueError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise InputError(
            f"the model fails on one image of shape {tuple(images.shape[1:])}: {first_line}; "
            "check that the images have the channels and size the model was built for"
        ) from error
    finally:
        for module, flag in flags:
            module.training = flag
    if not torch.is_tensor(out) or out.ndim != 2 or not out.is_floating_point():
        got = type(out).__name__ if not torch.is_tensor(out) else f"shape {tuple(out.shape)}"
        raise InputError(
            f"the model must return a float logits tensor of shape (N, classes), got {got}: "
            "wrap it so that forward returns the logits (e.g. the first element of a tuple)"
        )
    return int(out.shape[1])


def check_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float | Sequence[float] | None = None,
    *,
    model: nn.Module | None = None,
    num_classes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check an evaluation's inputs together: images (4-D, [0, 1], finite, of the model's
    dtype), labels (one per image, within the model's classes: ``num_classes`` or, given
    ``model``, the width of its output), and ``eps`` (a number or a grid). Returns
    ``(images, labels)`` unchanged."""
    check_images(images, dtype=None if model is None else model_dtype(model))
    if len(images) == 0:
        raise InputError("no images to evaluate (an empty batch): pass at least one image")
    if eps is not None:
        check_eps(eps) if isinstance(eps, int | float) else check_eps_grid(eps)
    check_labels(labels, len(images))
    if num_classes is None and model is not None:
        num_classes = output_classes(model, images)
    check_labels(labels, len(images), num_classes)
    return images, labels


__all__ = [
    "LINF_UNIT_RADIUS",
    "as_eps_grid",
    "check_batch",
    "check_eps",
    "check_eps_grid",
    "check_images",
    "check_labels",
    "check_linf_radii",
    "model_dtype",
    "output_classes",
    "row_list",
]

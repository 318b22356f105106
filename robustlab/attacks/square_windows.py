"""Geometry of the Square attack, vectorised over a batch: window sizes, masks and proposals.

Every row carries its own iteration counter, so its own window size (the p schedule), window
position, signs and, for L2, pattern orientation; nothing loops over images. The random numbers
come from `robustlab.attacks.square_search.DrawStream`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

# The p schedule of Andriushchenko et al. (2020): p_init halves after each breakpoint (in
# iterations of a 10000-query run; rescaled to n_queries).
P_BREAKPOINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
DIVISION = 1e-12  # added to norms before dividing, as the reference does


def sides_per_iteration(
    n_queries: int, p_init: float, shape: tuple, norm: str, rescale: bool = True
) -> torch.Tensor:
    """(n_queries,) side of the square at each iteration: p = p_init / 2**k after k breakpoints
    of the schedule (rescaled to ``n_queries`` unless ``rescale`` is False), side =
    round(sqrt(p * H * W)) (L2: odd, >= 3), within the image."""
    _, h, w = shape
    rescaled = torch.arange(n_queries, dtype=torch.float64)
    if rescale:
        rescaled = (rescaled / n_queries * 10000).floor()
    stage = (rescaled.unsqueeze(1) > torch.tensor(P_BREAKPOINTS, dtype=torch.float64)).sum(1)
    sides = []
    for k in range(len(P_BREAKPOINTS) + 1):
        side = round(math.sqrt(p_init / 2**k * h * w))
        if norm == "L2":
            side = max(side, 3)
            side += 1 - side % 2  # odd, so the pattern has a centre
        sides.append(min(max(side, 1), h, w))
    return torch.tensor(sides)[stage]


def window_mask(top: torch.Tensor, left: torch.Tensor, size: torch.Tensor, h: int, w: int):
    """Boolean (M, 1, h, w) masks of one square window per row."""
    rows = torch.arange(h, device=top.device)
    cols = torch.arange(w, device=top.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + size)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + size)[:, None])
    return (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)


def position(u: torch.Tensor, size: torch.Tensor, extent: int) -> torch.Tensor:
    """Window corner drawn uniformly in [0, extent - size), as the reference (0 if none)."""
    return (u * (extent - size)).long()


def signs(u: torch.Tensor) -> torch.Tensor:
    """+-1 from uniforms."""
    return torch.where(u < 0.5, -1.0, 1.0)


def linf_init(images: torch.Tensor, eps, u: torch.Tensor) -> torch.Tensor:
    """Vertical stripes: every column of every channel at +-eps (``u``: (N, C * W))."""
    n, c, _, w = images.shape
    return (images + eps * signs(u).view(n, c, 1, w)).clamp(0.0, 1.0)


def linf_proposal(images, best, eps, u: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """``best`` with one window per row set to ``images + eps * sign`` (one sign per channel),
    clipped to [0, 1]. ``u``: (M, 2 + C) uniforms (corner, signs)."""
    n, c, h, w = images.shape
    mask = window_mask(position(u[:, 0], size, h), position(u[:, 1], size, w), size, h, w)
    moved = (images + eps * signs(u[:, 2:]).view(n, c, 1, 1)).clamp(0.0, 1.0)
    return torch.where(mask, moved, best)


@lru_cache(maxsize=64)
def eta(size: int) -> torch.Tensor:
    """The reference's L2 window pattern: two opposite halves of nested rectangles whose weight
    falls with the square of their index, unit L2 norm."""
    pattern = torch.zeros(size, size, dtype=torch.float64)
    pattern[: size // 2] = _rectangles(size // 2, size)
    pattern[size // 2 :] = -_rectangles(size - size // 2, size)
    return pattern / pattern.square().sum().sqrt()


def _rectangles(x: int, y: int) -> torch.Tensor:
    delta = torch.zeros(x, y, dtype=torch.float64)
    top, left = x // 2, y // 2
    for k in range(max(x // 2 + 1, y // 2 + 1)):
        delta[max(top, 0) : min(top + 2 * k + 1, x), max(left, 0) : min(left + 2 * k + 1, y)] += (
            1.0 / (k + 1) ** 2
        )
        top, left = top - 1, left - 1
    return delta / delta.square().sum().sqrt().clamp(min=DIVISION)


def pattern_map(sizes, size, top, left, flip, *, shape: tuple[int, int]) -> torch.Tensor:
    """(M, 1, h, w): eta(size) of each row placed at (top, left), transposed where ``flip``,
    zero outside the window. ``sizes``: every side a row may have; ``shape``: (h, w)."""
    h, w = shape
    sizes = sizes.unique()  # sorted, for searchsorted
    largest = int(sizes.max())
    table = torch.zeros(len(sizes), largest, largest, dtype=torch.float64)
    for k, side in enumerate(sizes.tolist()):
        table[k, :side, :side] = eta(side)
    table = table.to(top.device, torch.get_default_dtype())
    index = torch.searchsorted(sizes.to(top.device), size)
    local_i = (torch.arange(h, device=top.device) - top[:, None]).clamp(0, largest - 1)
    local_j = (torch.arange(w, device=top.device) - left[:, None]).clamp(0, largest - 1)
    li, lj = local_i[:, :, None].expand(-1, h, w), local_j[:, None, :].expand(-1, h, w)
    flip = flip[:, None, None]
    values = table[index[:, None, None], torch.where(flip, lj, li), torch.where(flip, li, lj)]
    return (values * window_mask(top, left, size, h, w).squeeze(1)).unsqueeze(1)


def l2_init(images: torch.Tensor, eps, u_sign: torch.Tensor, u_flip: torch.Tensor):
    """The reference's L2 start: a centred grid of eta blocks (side H // 5), each with a sign
    per channel and an orientation, scaled to L2 norm eps. ``u_sign``: (N, blocks, C),
    ``u_flip``: (N, blocks), blocks = (H // side) * (W // side)."""
    n, c, h, w = images.shape
    side = max(h // 5, 1)
    start, per_row = (h - 5 * side) // 2, w // side
    block_r, local_r = divmod_tensor(torch.arange(h) - start, side)
    block_c, local_c = divmod_tensor(torch.arange(w) - start, side)
    inside = ((block_r >= 0) & (block_r < h // side))[:, None] & (
        (block_c >= 0) & (block_c < per_row)
    )[None, :]
    block = (block_r.clamp(min=0)[:, None] * per_row + block_c.clamp(min=0)[None, :]).clamp(
        max=u_flip.shape[1] - 1
    )
    pattern = eta(side).to(images.dtype)
    plain, turned = (
        pattern[local_r[:, None], local_c[None, :]],
        pattern.T[local_r[:, None], local_c[None, :]],
    )
    flip = (u_flip < 0.5)[:, block]  # (N, h, w)
    values = torch.where(flip, turned, plain) * inside
    delta = values.unsqueeze(1).to(images.device) * signs(u_sign[:, block]).permute(0, 3, 1, 2).to(
        images.device
    )
    return (images + normalised(delta) * eps).clamp(0.0, 1.0)


def divmod_tensor(value: torch.Tensor, divisor: int) -> tuple[torch.Tensor, torch.Tensor]:
    return value.div(divisor, rounding_mode="floor"), value.remainder(divisor)


def normalised(delta: torch.Tensor) -> torch.Tensor:
    """Each row divided by its L2 norm (plus the reference's 1e-12)."""
    norms = delta.flatten(1).norm(dim=1) + DIVISION
    return delta / norms.view(-1, *[1] * (delta.ndim - 1))


def l2_proposal(images, best, eps, u: torch.Tensor, *, size: torch.Tensor, sizes) -> torch.Tensor:
    """The reference's L2 step for every row at once: a fresh eta pattern (signed per channel)
    plus the old content of window 1 goes into window 1 with the norm that window 1, window 2
    and the unused budget allowed; window 2 is emptied; the whole perturbation is rescaled to
    norm eps. ``u``: (M, 5 + C) uniforms (two corners, orientation, signs)."""
    n, c, h, w = images.shape
    delta = best - images
    top, left = position(u[:, 0], size, h), position(u[:, 1], size, w)
    first = window_mask(top, left, size, h, w)
    second = window_mask(position(u[:, 2], size, h), position(u[:, 3], size, w), size, h, w)
    norm_first = (delta * first).square().sum(dim=(2, 3), keepdim=True).sqrt()
    norm_image = delta.square().sum(dim=(1, 2, 3), keepdim=True).sqrt()
    norm_both = (delta * (first | second)).square().sum(dim=(1, 2, 3), keepdim=True).sqrt()
    fresh = pattern_map(sizes, size, top, left, u[:, 4] > 0.5, shape=(h, w))
    new = fresh * signs(u[:, 5:]).view(n, c, 1, 1) + delta * first / (DIVISION + norm_first)
    budget = ((eps**2 - norm_image**2).clamp(min=0.0) / c + norm_both**2).sqrt()
    new = new / (DIVISION + new.square().sum(dim=(2, 3), keepdim=True).sqrt()) * budget
    delta = torch.where(first, new, delta * ~second)
    return (images + normalised(delta) * eps).clamp(0.0, 1.0)

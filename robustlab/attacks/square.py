"""The Square attack: score-based random search in square windows, vectorised over the batch."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks import row_random
from robustlab.attacks import square_windows as sw
from robustlab.attacks.base import Attack, check_radii, is_success
from robustlab.attacks.geometry import per_row
from robustlab.attacks.losses import margin_loss
from robustlab.attacks.square_search import DrawStream, LinfMemo
from robustlab.errors import ConfigError

SQUARE_NORMS = ("Linf", "L2")


class _Search:
    """The state one run's proposals are made from: clean rows, current iterates (updated in
    place by the run), radii, per-row iteration counters (CPU) and the side per iteration."""

    def __init__(self, images, best, radius, iteration, side_at):
        self.images, self.best, self.radius = images, best, radius
        self.iteration, self.side_at = iteration, side_at

    def propose(self, rows: torch.Tensor, u: torch.Tensor, norm: str) -> torch.Tensor:
        """The proposals of ``rows`` (CPU) from their draws ``u`` at their iterations."""
        device = self.images.device
        size = self.side_at[self.iteration[rows]].to(device)
        r = self.radius if isinstance(self.radius, float) else self.radius[rows.to(device)]
        x, best, u = self.images[rows.to(device)], self.best[rows.to(device)], u.to(device)
        if norm == "Linf":
            return sw.linf_proposal(x, best, r, u, size)
        return sw.l2_proposal(x, best, r, u, size=size, sizes=self.side_at.to(device))


class Square(Attack):
    r"""Square from 'Square Attack: a query-efficient black-box adversarial attack via random
    search' (Andriushchenko et al., 2020) [https://arxiv.org/abs/1912.00049].

    Distance measure: Linf or L2. Gradient-free: only the model's logits are queried. The
    algorithm of torchattacks.Square (AutoAttack's port) on the margin loss (logit of the label
    minus the largest other logit): Linf starts from vertical stripes at +-eps and proposes, per
    query, one square window set to +-eps (one sign per channel); L2 starts from a grid of the
    paper's centre/complement patterns and moves mass from a second window into a fresh pattern
    in the first. The window side follows the paper's p schedule (p_init halved at iterations
    10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of 10000, rescaled to ``n_queries``). A
    proposal is kept when it lowers the margin.

    Unlike the port, every row draws its own windows and signs (the port shares one window per
    query across the batch), from the attack's own seeded CPU generator (the global random
    state is never touched). A proposal identical to the row's current iterate (a window whose
    pixels already hold the drawn signs, frequent once the windows are one pixel wide) cannot
    change the margin, so it costs its iteration but no forward pass; so does (Linf) a proposal
    the row already evaluated from its current iterate (the margin is deterministic: it would
    lose again), and a row that has evaluated every proposal of the current window side moves on
    to the next side (`robustlab.attacks.square_search.LinfMemo`). Each forward carries
    every row's next useful proposal, so rows advance through their ``n_queries`` iterations at
    their own pace. Fooled rows leave (``early_stop``); a row's draws depend only on the seed,
    the batch size and its index, so neither changes any other row's result. A row never
    fooled comes back as the lowest-margin image seen (the clean one if no start beat it).

    Arguments (torchattacks.Square's, then robustlab's keyword-only early_stop, model_mode):
        model (nn.Module): model to attack; takes [0, 1] images and returns logits.
        norm (str): ``"Linf"`` or ``"L2"``. (Default: "Linf")
        eps (float or Tensor): radius, or one radius per image, shape (N,). (Default: 8/255)
        n_queries (int): iterations per restart (one query each, plus one for the start).
            (Default: 5000)
        n_restarts (int): runs, each on the rows no earlier run fooled. (Default: 1)
        p_init (float): initial fraction of pixels in the window. (Default: 0.8)
        loss (str): ``"margin"`` only (the port's ``"ce"``: ``torchattacks.Square`` by name).
        resc_schedule (bool): rescale the p schedule to ``n_queries``. (Default: True)
        seed (int): seed of the attack's generator, reset at every call; or one seed per
            image (int64 tensor): each row then draws from its own generators, so its draws
            depend on its seed alone (`robustlab.attacks.row_random`). (Default: 0)
        verbose (bool): print the robust accuracy after every restart. (Default: False)
        early_stop (bool): a fooled row stops; else every row runs all its iterations and
            keeps lowering its margin. (Default: True)
        model_mode (str): ``"eval"`` or ``"train"``. (Default: "eval")

    Cost: ``forward_evals`` counts the images forwarded through the model since construction
    (clean check, starts, effective proposals, final check); ``run`` reports
    ``grad_evals = 0``.

    Shape:
        - images: (N, C, H, W), values in [0, 1]. labels: (N,) int64. output: (N, C, H, W).

    Examples::
        >>> adv_images = Square(model, eps=8/255, n_queries=5000)(images, labels)
        >>> per_image = Square(model, eps=torch.tensor([0.05, 0.1, 0.2]), norm="Linf")
    """

    LOOKAHEAD = 32  # Linf: draws examined at once for the next proposal that is not known

    def __init__(
        self,
        model: nn.Module,
        norm: str = "Linf",
        eps: float | torch.Tensor = 8 / 255,
        n_queries: int = 5000,
        n_restarts: int = 1,
        p_init: float = 0.8,
        loss: str = "margin",
        resc_schedule: bool = True,
        seed: int | torch.Tensor = 0,
        verbose: bool = False,
        *,
        early_stop: bool = True,
        model_mode: str = "eval",
    ):
        radii = check_radii("Square", eps)
        super().__init__(
            model, float(radii.max()) if radii.numel() else 0.0, "margin", False, model_mode
        )
        if norm not in SQUARE_NORMS:
            raise ConfigError(f"Square norm must be one of {', '.join(SQUARE_NORMS)}, got {norm!r}")
        if loss != "margin":
            raise ConfigError(
                f"native Square minimises the margin loss only, got loss={loss!r}; use "
                "build_attack('torchattacks.Square', model, loss='ce') for the port's CE loss"
            )
        counts = (n_queries, n_restarts)
        if not all(isinstance(k, int) and k >= 1 for k in counts) or not 0 < p_init <= 1:
            raise ConfigError(
                "Square needs n_queries >= 1, n_restarts >= 1 and 0 < p_init <= 1, got "
                f"{n_queries!r}, {n_restarts!r}, {p_init!r}"
            )
        self.eps = radii if radii.ndim == 1 else float(radii)
        self.norm, self.n_queries, self.p_init = norm, n_queries, float(p_init)
        self.n_restarts, self.early_stop = n_restarts, bool(early_stop)
        self.seed = row_random.check_seed(seed)
        self.resc_schedule, self.verbose = bool(resc_schedule), bool(verbose)
        self.forward_evals = 0
        self._check_pixel_eps()

    def _craft(
        self, images: torch.Tensor, labels: torch.Tensor, need_success: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        eps = self.radii(len(images), images.device)
        # One generator per restart, seeded from the attack's seed: a restart's draws never
        # depend on how far the previous one went.
        generators = row_random.restart_generators(self.seed, self.n_restarts)
        adv = images.clone()
        margin = self._margin(images, labels)
        todo = margin > 0 if self.early_stop else torch.ones_like(margin, dtype=torch.bool)
        for generator in generators:
            if not todo.any():
                break
            best, best_margin = self._single_run(images, labels, eps, generator, todo)
            better = best_margin < margin
            adv[better], margin[better] = best[better], best_margin[better]
            if self.early_stop:
                todo &= margin > 0
            if self.verbose:
                print(f"Square restart: robust accuracy {(margin > 0).float().mean():.2%}")
        if not need_success:
            return adv, None, 0
        with torch.no_grad():
            logits = self._query(adv)
        return adv, is_success(logits, labels, self.targeted), 0

    @torch.no_grad()
    def _single_run(self, images, labels, eps, generator, todo) -> tuple[torch.Tensor, ...]:
        """One start and ``n_queries`` iterations for the rows in ``todo``: (best iterate, its
        margin; inf for the other rows). Draws are made for every row of the batch, so that a
        row's draws do not depend on which other rows are attacked."""
        n, shape = len(images), tuple(images.shape[1:])
        radius = per_row(eps, images)
        best = self._start(images, radius, generator)
        margin = torch.full((n,), float("inf"), device=images.device)
        index = todo.nonzero().squeeze(1)
        margin[index] = self._margin(best[index], labels[index])
        side_at = sw.sides_per_iteration(
            self.n_queries, self.p_init, shape, self.norm, self.resc_schedule
        )
        draws = DrawStream(n, (2 if self.norm == "Linf" else 5) + shape[0], generator)
        memo = None
        if self.norm == "Linf" and LinfMemo.fits(shape, len(side_at.unique())):
            memo = LinfMemo(n, shape, side_at)
        search = _Search(images, best, radius, torch.zeros(n, dtype=torch.long), side_at)
        todo = (todo & (margin > 0) if self.early_stop else todo).cpu()
        while True:
            rows = (todo & (search.iteration < self.n_queries)).nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            draws.release(int(search.iteration[rows].min()))
            rows, proposal, keys = self._proposals(search, rows, draws, memo)
            if rows.numel() == 0:
                break
            new_margin = self._margin(proposal, labels[rows])
            search.iteration[rows] += 1
            index = rows.to(images.device)
            better = new_margin < margin[index]
            best[index[better]], margin[index[better]] = proposal[better], new_margin[better]
            if memo is not None:
                better = better.cpu()
                memo.forget(rows[better])
                memo.mark(rows[~better], keys[~better])
            if self.early_stop:
                todo[rows[(new_margin <= 0).cpu()]] = False
        return best, margin

    def _proposals(self, search: _Search, rows, draws: DrawStream, memo: LinfMemo | None):
        """(rows, proposals, memo keys): each row's next proposal that is neither identical to
        its iterate nor known to lose (Linf memo); the iterations of the others are used up
        without a query. Rows out of iterations drop out."""
        ahead = torch.arange(self.LOOKAHEAD if memo is not None else 1)
        found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        while rows.numel():
            iteration = search.iteration
            rows = rows[iteration[rows] < self.n_queries]
            if memo is not None and rows.numel():
                done = rows[memo.exhausted(rows, iteration[rows])]
                iteration[done] = memo.side_end[iteration[done]]
                rows = rows[iteration[rows] < self.n_queries]
            if rows.numel() == 0:
                break
            at = iteration[rows][:, None] + ahead
            inside = at < self.n_queries
            at = at.clamp(max=self.n_queries - 1)
            u = draws.take(rows[:, None].expand_as(at), at)
            keys = memo.keys(u, at, *search.images.shape[2:]) if memo is not None else at
            fresh = inside & (~memo.is_known(rows, keys) if memo is not None else True)
            has, first = fresh.any(1), fresh.long().argmax(1)
            iteration[rows[~has]] += len(ahead)
            pick = torch.arange(len(rows))[has]
            chosen, key = rows[has], keys[pick, first[has]]
            iteration[chosen] += first[has]
            proposal = search.propose(chosen, u[pick, first[has]], self.norm)
            changed = (proposal != search.best[chosen]).flatten(1).any(dim=1).cpu()
            found.append((chosen[changed], proposal[changed.to(proposal.device)], key[changed]))
            if memo is not None:
                memo.mark(chosen[~changed], key[~changed])
            iteration[chosen[~changed]] += 1
            rows = torch.cat([rows[~has], chosen[~changed]])
        if not found:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, search.images[:0], empty
        return tuple(torch.cat(parts) for parts in zip(*found, strict=True))

    def _start(self, images: torch.Tensor, radius, generator: row_random.Generator) -> torch.Tensor:
        n, c, h, w = images.shape
        if self.norm == "Linf":
            return sw.linf_init(
                images, radius, row_random.rand((n, c * w), generator).to(images.device)
            )
        side = max(h // 5, 1)
        blocks = (h // side) * (w // side)
        u_sign = row_random.rand((n, blocks, c), generator)
        return sw.l2_init(images, radius, u_sign, row_random.rand((n, blocks), generator))

    def _query(self, adv: torch.Tensor) -> torch.Tensor:
        self.forward_evals += len(adv)
        return self.model(adv)

    @torch.no_grad()
    def _margin(self, adv: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logit of the label minus the largest other logit (targeted: the reverse)."""
        margin = margin_loss(self._query(adv), labels)  # > 0: fooled (untargeted)
        return margin if self.targeted else -margin

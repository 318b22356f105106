"""Auto-PGD (APGD) and its targeted variant APGD-T, the gradient attacks of AutoAttack."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustlab.attacks import geometry, l1, row_random
from robustlab.attacks.apgd_state import L1_INITIAL_SPARSITY, RunState
from robustlab.attacks.base import check_radii, is_success
from robustlab.attacks.iterative import IterativeAttack
from robustlab.attacks.losses import LossSpec, per_example_objective, targeted_dlr_loss
from robustlab.errors import ConfigError

APGD_LOSSES = ("ce", "dlr", "margin")


@dataclass
class _Run:
    """One APGD run over a batch: its fooling iterates, best-loss iterates and cost."""

    adv: torch.Tensor
    fooled: torch.Tensor
    evals: int


APGD_NORMS = ("Linf", "L2", "L1")
# L1-APGD checks its step size every 4% of the steps (Croce & Hein 2021), not on APGD's
# shrinking checkpoint schedule.
L1_CHECK_EVERY = 0.04


class APGD(IterativeAttack):
    r"""APGD from 'Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks' (Croce & Hein, 2020) [https://arxiv.org/abs/2003.01690].

    Distance measure: Linf, L2 or L1. Linf/L2: PGD with momentum 0.75 whose step size
    (initially 2 eps) is halved per example at the checkpoints p_j (p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), times ``steps``) where either fewer than
    ``rho`` of the steps since the last checkpoint raised the loss, or the step size was not
    halved last time and the best loss has not improved since; a halved example restarts from
    its best point.
    Each example keeps its first fooling iterate (else its highest-loss one) and, with
    ``early_stop``, leaves the batch once fooled: rows are independent, so this changes no
    other row's trajectory and only saves work.

    L1 is L1-APGD from 'Mind the box: l1-APGD for sparse adversarial attacks on image
    classifiers' (Croce & Hein, 2021) [https://arxiv.org/abs/2103.01208], as in its reference
    code: a random start projected onto the L1 ball ∩ [0, 1] (the exact projection of
    `robustlab.attacks.l1`), no momentum, the sign step of L1 length eta on the top k
    coordinates of |grad| that can move (k = 20% of them at first), eta = eps at first. Every
    4% of the steps k becomes the best point's number of changed coordinates / 1.5; a row whose
    best point got at least 5% sparser since the last check restarts there with eta = eps, the
    others shrink eta by 1.5, never below eps / 10.

    Arguments (torchattacks.APGD's positional order: model, norm, eps, steps, n_restarts, seed,
    loss, eot_iter, rho, verbose; then robustlab's keyword-only targeted, n_target_classes,
    early_stop, model_mode):
        model (nn.Module): model to attack; takes [0, 1] images and returns logits.
        eps (float or Tensor): radius of the ball, or one radius per image, shape (N,), so that
            one batch holds examples attacked at different eps. (Default: 8/255)
        steps (int): iterations per run. (Default: 10, torchattacks'; AutoAttack uses 100)
        norm (str): ``"Linf"``, ``"L2"`` or ``"L1"``. (Default: "Linf")
        loss (str): ``"ce"`` (APGD-CE), ``"dlr"`` (APGD-DLR, scale-invariant) or ``"margin"``.
            (Default: "ce")
        targeted (bool): APGD-T: one run per target among the ``n_target_classes`` most likely
            wrong classes (of the clean image), each with the targeted DLR loss, on the
            examples no earlier run fooled; ``labels`` stay the true labels. (Default: False)
        n_target_classes (int): targets of APGD-T. (Default: 9)
        n_restarts (int): random starts per run, each on the examples not yet fooled.
            (Default: 1)
        rho (float): the oscillation threshold of the step-size rule. (Default: 0.75)
        seed (int): seed of the random starts, drawn on the CPU exactly as
            torchattacks.APGD / APGDT draw them, so a seeded run starts where theirs does; or
            one seed per image (int64 tensor): each row then draws from its own generator,
            whatever batch it is in (`robustlab.attacks.row_random`).
        eot_iter (int): gradients averaged per step (EOT, for randomised models). (Default: 1)
        verbose (bool): print the robust accuracy after every run. (Default: False)
        early_stop (bool): stop updating fooled examples. (Default: True)
        model_mode (str): ``"eval"`` or ``"train"``. (Default: "eval")

    Shape:
        - images: (N, C, H, W), values in [0, 1]. labels: (N,) int64. output: (N, C, H, W).

    Examples::
        >>> adv_images = APGD(model, eps=8/255, steps=100, loss="ce")(images, labels)
        >>> apgd_t = APGD(model, eps=8/255, loss="dlr", targeted=True, n_target_classes=9)
    """

    def __init__(
        self,
        model: nn.Module,
        norm: str = "Linf",
        eps: float | torch.Tensor = 8 / 255,
        steps: int = 10,
        n_restarts: int = 1,
        seed: int | torch.Tensor = 0,
        loss: LossSpec = "ce",
        eot_iter: int = 1,
        rho: float = 0.75,
        verbose: bool = False,
        *,
        targeted: bool = False,
        n_target_classes: int = 9,
        early_stop: bool = True,
        model_mode: str = "eval",
    ):
        radii = check_radii("APGD", eps)
        largest = float(radii.max()) if radii.numel() else 0.0
        super().__init__(model, largest, loss=loss, targeted=False, model_mode=model_mode)
        self.eps = radii if radii.ndim == 1 else float(radii)
        if norm not in APGD_NORMS:
            raise ConfigError(f"APGD norm must be one of {', '.join(APGD_NORMS)}, got {norm!r}")
        if self.loss not in APGD_LOSSES:
            raise ConfigError(f"APGD loss must be one of {', '.join(APGD_LOSSES)}, got {loss!r}")
        counts = (steps, n_restarts, n_target_classes, eot_iter)
        if not all(isinstance(c, int) and c >= 1 for c in counts) or not 0 < rho < 1:
            raise ConfigError(
                "APGD needs steps, n_restarts, n_target_classes, eot_iter >= 1 and 0 < rho < 1, "
                f"got {steps!r}, {n_restarts!r}, {n_target_classes!r}, {eot_iter!r}, {rho!r}"
            )
        self.norm, self.steps, self.n_restarts, self.rho = norm, steps, n_restarts, float(rho)
        self.eot_iter, self.verbose = eot_iter, bool(verbose)
        self.target_classes = n_target_classes if targeted else 0
        self.supports_targeted = not targeted  # APGD-T chooses its own targets
        self.seed, self.early_stop = row_random.check_seed(seed), bool(early_stop)
        # the initial step size of the reference: 2 eps (Linf, L2), eps (L1)
        self.step_factor = 1.0 if norm == "L1" else 2.0
        self.alpha = self.step_factor * self.eps
        # L1: the protocol's step (IterativeAttack.step) is the first step of a run
        self.l1_quantile = 1.0 - L1_INITIAL_SPARSITY
        self._check_pixel_eps()

    def checkpoints(self) -> list[int]:
        """Iterations (0-based) after which the step-size rule is checked."""
        if self.norm == "L1":
            every = max(int(L1_CHECK_EVERY * self.steps), 1)
            return list(range(every - 1, self.steps, every))
        length = max(int(0.22 * self.steps), 1)
        shortest, decrease = max(int(0.06 * self.steps), 1), max(int(0.03 * self.steps), 1)
        points, at = [], length - 1
        while at < self.steps:
            points.append(at)
            length = max(length - decrease, shortest)
            at += length
        return points

    def start(
        self,
        images: torch.Tensor,
        generator: row_random.Generator | None = None,
        eps: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """A random point on the sphere of radius ``eps`` (default: the attack's; Linf: scaled
        uniform noise), clipped; L1: Gaussian noise projected onto the L1 ball ∩ [0, 1], as the
        reference draws it."""
        shape, eps = images.shape, self.radii(len(images), images.device) if eps is None else eps
        if self.norm == "L1":
            noise = row_random.randn(shape, generator).to(images.device)
            return l1.project_l1_box(images + noise, images, eps)
        if self.norm == "Linf":
            t = (2 * row_random.rand(shape, generator) - 1).to(images.device)
        else:
            t = row_random.randn(shape, generator).to(images.device)
        scale = geometry.row_norms(t, self.norm) + (0.0 if self.norm == "Linf" else 1e-12)
        adv = images + geometry.per_row(eps, images) * t / geometry.per_row(scale, images)
        return adv.clamp(0.0, 1.0)

    def _craft(
        self, images: torch.Tensor, labels: torch.Tensor, need_success: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        if self.targeted and self.loss != "ce":
            raise ConfigError("APGD with target labels supports loss='ce' only")
        generator = row_random.make_generator(self.seed)
        with torch.no_grad():
            logits = self.model(images)
        fooled = is_success(logits, labels, self.targeted)
        adv, evals = images.clone(), 0
        radius = torch.as_tensor(self.radii(len(images), images.device), device=images.device)
        radius = radius.expand(len(images)).float()
        ranked = logits.argsort(dim=1)  # ascending: the label of a correct example is last
        ranks = range(2, min(self.target_classes, logits.shape[1] - 1) + 2)
        for rank in ranks if self.target_classes else [None]:
            for restart in range(self.n_restarts):
                todo = (~fooled).nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                target = None if rank is None else ranked[todo, -rank]
                data = (images[todo], labels[todo], target, radius[todo])
                run = self._single_run(data, row_random.rows_of(generator, todo))
                adv[todo], evals = run.adv, evals + run.evals
                fooled[todo[run.fooled]] = True
                if self.verbose:
                    print(
                        f"{type(self).__name__} target rank {rank or '-'} restart {restart}: "
                        f"robust accuracy {1 - fooled.float().mean():.2%}"
                    )
        return adv, fooled, evals

    def _loss_grad(
        self, adv: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, target
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input gradient, logits, per-example loss) at ``adv``: one forward+backward, or
        the mean gradient over ``eot_iter`` of them (expectation over a random model)."""
        adv = adv.detach().requires_grad_(True)
        grad = torch.zeros_like(adv)
        for _ in range(self.eot_iter):
            with torch.enable_grad():
                logits = self.model(adv)
                if target is None:
                    loss = per_example_objective(self.loss, logits, labels, self.targeted)
                else:
                    loss = targeted_dlr_loss(logits, labels, target)
                grad += torch.autograd.grad(loss.sum(), adv)[0]
        return grad / self.eot_iter, logits.detach(), loss.detach()

    @torch.no_grad()
    def _single_run(self, data: tuple, generator: row_random.Generator) -> _Run:
        """One run on ``data`` = (images, labels, targets or None, radii (N,))."""
        images, labels, target, radius = data
        adv = self.start(images, generator, radius)
        grad, logits, loss = self._loss_grad(adv, images, labels, target)
        fooled = is_success(logits, labels, self.targeted)
        first = float("-inf") if self.loss == "ce" and target is None else 0.0
        step_size = self.step_factor * radius
        state = RunState(data, adv, grad, loss, step_size=step_size, steps=self.steps, first=first)
        out, evals = adv.clone(), len(images)
        if self.early_stop:
            state.keep(~fooled)
        checks, last_check = set(self.checkpoints()), -1
        for i in range(self.steps):
            if len(state) == 0:
                break
            new = self._momentum_step(state, first=i == 0)
            grad, logits, loss = self._loss_grad(new, state.images, state.labels, state.target)
            evals += len(state)
            now = is_success(logits, state.labels, self.targeted)
            out[state.index[now]] = new[now]  # before a checkpoint may reset the iterate
            fooled[state.index[now]] = True
            state.record(i, new, grad, loss)
            if i in checks and self.norm == "L1":
                state.check_sparsity()
            elif i in checks:
                state.check(i, i - last_check, self.rho)
                last_check = i
            if self.early_stop and now.any():  # the state shrinks only when someone is fooled
                state.keep(~now)
        never = ~fooled[state.index]
        out[state.index[never]] = state.best[never]
        return _Run(out, fooled, evals)

    def _momentum_step(self, state: RunState, first: bool) -> torch.Tensor:
        """``z = P(x + eta * step(grad))``, ``x' = P(x + a (z - x) + (1 - a)(x - x_prev))``;
        L1: ``x' = z`` with the step on each row's own top k coordinates (no momentum)."""
        x, images = state.adv, state.images
        if self.norm == "L1":
            state.previous = x
            moved = l1.top_k_sign_step(x, state.grad, state.step_size, state.top_k())
            return self.project(moved, images, state.radius)
        z = self.step(x, images, state.grad, eps=state.radius, alpha=state.step_size)
        a = 1.0 if first else 0.75
        new = self.project(x + a * (z - x) + (1 - a) * (x - state.previous), images, state.radius)
        state.previous = x
        return new

"""Bayesian uncertainty by Monte-Carlo dropout (Gal & Ghahramani 2016; Feinman et al. 2017).

``U(x) = 1/T sum_t p_t . p_t - pbar . pbar`` over ``T`` softmax vectors ``p_t`` sampled with
dropout on (Feinman et al., eq. 4): the trace of the predictive covariance, computed here in
its equal form ``sum_c mean_t (p_tc - pbar_c)^2`` so that it is never negative.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from robustlab.errors import ConfigError


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """The model's dropout layers with a non-zero rate."""
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


def require_dropout(model: nn.Module) -> None:
    """Raise ConfigError unless the model has dropout to sample from."""
    if not dropout_layers(model):
        raise ConfigError(
            f"Bayesian uncertainty needs a model with dropout, and {type(model).__name__} has "
            "none: create and train it with a head dropout rate, e.g. "
            "create_model('resnet20', 10, 1, dropout=0.5) (config: model.dropout=0.5)"
        )


@contextmanager
def mc_dropout(model: nn.Module) -> Iterator[None]:
    """Dropout layers in training mode (everything else as it was), restored on exit."""
    layers = dropout_layers(model)
    flags = [layer.training for layer in layers]
    for layer in layers:
        layer.train(True)
    try:
        yield
    finally:
        for layer, flag in zip(layers, flags, strict=True):
            layer.train(flag)


def predictive_uncertainty(probabilities: torch.Tensor) -> torch.Tensor:
    """``U`` per example ``(N,)`` from softmax samples ``(T, N, C)``."""
    probabilities = probabilities.double()
    return (probabilities - probabilities.mean(0)).square().mean(0).sum(1)


def mc_probabilities(
    model: nn.Module, images: torch.Tensor, last_map: torch.Tensor, samples: int
) -> torch.Tensor:
    """``samples`` softmax vectors ``(T, N, C)`` with dropout on (differentiable).

    When every dropout layer sits in ``model.head`` (robustlab models), the head alone is
    re-run on ``last_map``: one feature pass serves every sample. Otherwise the whole model
    runs ``samples`` times.
    """
    require_dropout(model)
    head = getattr(model, "forward_head", None) if _dropout_in_head(model) else None
    with mc_dropout(model):
        draws = [(head(last_map) if head else model(images)).softmax(1) for _ in range(samples)]
    return torch.stack(draws)


def _dropout_in_head(model: nn.Module) -> bool:
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        return False
    in_head = {id(m) for m in head.modules()}
    return all(id(layer) in in_head for layer in dropout_layers(model))

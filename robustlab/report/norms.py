"""Threat models of a report: which norm each robust-accuracy curve is measured in, in which
order the norms are shown, and how their budgets read (eps, or pixels changed for L0)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# the order of a report's norm groups; a norm not listed here follows them
NORM_ORDER = ("Linf", "L2", "L1", "L0")
# the per-example worst case of each norm's curves, where the job has one; the Linf one (over
# every Linf attack the job ran) is what reports lead with
WORST_CASES = {"Linf": "worst_case", "L0": "l0_worst_case"}


def norm_from_key(key: str) -> str:
    """The norm a curve key names, for results.json files written before ``robust_accuracy_norm``
    existed: the L0 worst case, ``*l2*`` (pgd_l2) and ``*l1*`` keys, else Linf (the only other
    norm those files had)."""
    name = key.lower()
    if name == WORST_CASES["L0"]:
        return "L0"
    if "l2" in name:
        return "L2"
    return "L1" if "l1" in name else "Linf"


def recorded_norms(payload: Mapping, curves: Iterable[str]) -> dict[str, str]:
    """Each curve's norm in a results.json object: its ``robust_accuracy_norm`` entry; in files
    written before that record existed, the worst-case block's norm for ``worst_case``, else
    the norm the key names (``norm_from_key``)."""
    record = payload.get("robust_accuracy_norm")
    known = {
        str(key): norm
        for key, norm in (record.items() if isinstance(record, Mapping) else ())
        if isinstance(norm, str) and norm
    }
    suite = payload.get("worst_case")
    suite_norm = suite.get("norm") if isinstance(suite, Mapping) else None
    if isinstance(suite_norm, str) and suite_norm:
        known.setdefault("worst_case", suite_norm)
    return {key: known.get(key) or norm_from_key(key) for key in curves}


def budget_axis(norm: str) -> str:
    """The x-axis label of a norm's curves."""
    return "pixels changed" if norm == "L0" else f"eps ({norm})"


def budget_header(attack: str, norm: str, budget: str) -> str:
    """A table column: ``pgd eps=0.1``, ``jsma ≤5 px`` (L0), the attack alone without a budget."""
    if budget == "inf":
        return attack
    if norm == "L0":
        try:
            return f"{attack} ≤{int(float(budget))} px"
        except ValueError:
            return f"{attack} ≤{budget} px"
    return f"{attack} eps={budget}"


def _norm_rank(norm: str) -> tuple[int, str]:
    return (NORM_ORDER.index(norm) if norm in NORM_ORDER else len(NORM_ORDER), norm)


def curves_by_norm(
    attacks: Iterable[str], norms: Mapping[str, str], lead: str | None = None
) -> dict[str, list[str]]:
    """Curve keys grouped by norm (Linf, L2, L1, L0, then any other), each group led by ``lead``
    when it is in the group, then by the group's worst case, then the rest by name."""
    groups: dict[str, list[str]] = {}
    for attack in dict.fromkeys(attacks):
        groups.setdefault(norms.get(attack) or norm_from_key(attack), []).append(attack)

    def rank(norm: str, attack: str) -> tuple[int, str]:
        first = 0 if attack == lead else 1 if attack == WORST_CASES.get(norm) else 2
        return first, attack

    return {
        norm: sorted(groups[norm], key=lambda a, n=norm: rank(n, a))
        for norm in sorted(groups, key=_norm_rank)
    }

"""Dispatch policies by name. A new policy is one module implementing `DispatchPolicy` and one entry here."""
from __future__ import annotations

from typing import Callable

from sut.dispatch.policies.base import DispatchPolicy, Move, MoveKind
from sut.dispatch.policies.least_work import LeastWorkPolicy
from sut.dispatch.policies.pull import PullPolicy


def _pull(credit_factor: float = 2.0, order: str = "fifo", **_) -> DispatchPolicy:
    return PullPolicy(credit_factor, order)


def _least_work(**_) -> DispatchPolicy:
    return LeastWorkPolicy()


_REGISTRY: dict[str, Callable[..., DispatchPolicy]] = {"pull": _pull, "least-work": _least_work}


def policy_names() -> list[str]:
    return list(_REGISTRY)


def create_policy(name: str, **options) -> DispatchPolicy:
    """Options every policy accepts and may ignore: credit_factor, order."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"--policy {name!r}: choose one of {', '.join(policy_names())}") from None
    return factory(**options)


__all__ = ["DispatchPolicy", "LeastWorkPolicy", "Move", "MoveKind", "PullPolicy", "create_policy", "policy_names"]

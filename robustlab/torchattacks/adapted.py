"""Drop-in classes that run torchattacks' own algorithm on robustlab's base class.

``adapted(torchattacks.CW, module)`` is a class named ``CW`` that subclasses
``torchattacks.CW`` and then `robustlab.torchattacks.attack.Attack`: torchattacks' constructor,
signature, defaults, attributes and ``forward`` (so its output is torchattacks' own), with
robustlab's input check and model restoration on every call. It is used where robustlab has
no native implementation, or where its native one returns other images (robustlab's APGD and
Square draw their randomness per row and keep their best attempt for an unbroken row).
"""

from __future__ import annotations

import inspect

from robustlab.torchattacks.attack import Attack


def adapted(port: type, module: str) -> type:
    """The drop-in class of the torchattacks class ``port``, defined in ``module``."""
    doc = inspect.getdoc(port) or ""
    namespace = {
        "__module__": module,
        "__qualname__": port.__name__,
        "__doc__": f"torchattacks' {port.__name__}, run on robustlab's `Attack`.\n\n{doc}",
    }
    return type(port.__name__, (port, Attack), namespace)


__all__ = ["adapted"]

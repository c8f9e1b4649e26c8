"""Lazy package exports (PEP 562), so that ``vq-* --help`` does not import torch.

Every console script lives in ``<package>.cli``, and importing it runs ``<package>/__init__.py`` first.
An ``__init__`` that imported its submodules eagerly would pull in torch, torchvision, transformers and
Ray before click printed a line; with :func:`lazy_exports` the package's public names stay the same
(``from vq_core import load_checkpoint`` works as before) but each submodule is imported on first use.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package module whose exported names resolve on first access.

    Importing a submodule makes Python bind it on the package (``vq_data.pack`` becomes the module
    ``vq_data.pack``); where an export has the submodule's name (the function ``vq_data.pack.pack``)
    the export wins, as it did with eager ``from vq_data.pack import pack`` lines.
    """

    _lazy_where: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        where = self.__dict__.get("_lazy_where", {})
        if name not in where:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        module = importlib.import_module(where[name])
        value = getattr(module, name) if hasattr(module, name) else module
        self.__dict__[name] = value  # later look-ups skip __getattr__
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        where = self.__dict__.get("_lazy_where", {})
        if isinstance(value, types.ModuleType) and name in where and value.__name__ == f"{self.__name__}.{name}":
            if hasattr(value, name):  # a submodule binding over an export of the same name
                value = getattr(value, name)
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(self.__dict__.get("_lazy_where", {})))


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]) -> list[str]:
    """Make ``package`` export ``exports`` (submodule -> public names) lazily; its ``__all__``.

    A name equal to the submodule's last component that the submodule does not define
    (``"vq_core.vqpt": ["vqpt"]``) exports the module itself.
    """
    where: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package} exports {name!r} from both {where[name]} and {module}")
            where[name] = module
    pkg = sys.modules[package]
    pkg.__class__ = _LazyPackage
    pkg.__dict__["_lazy_where"] = where
    return sorted(where)

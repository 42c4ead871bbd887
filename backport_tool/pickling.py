"""Pickling of instances of a class target's replacement.

The replacement lives in a backport module, which a process without the patch
set cannot import. Its instances therefore pickle as instances of the class
at the target's path (``torch.nn.modules.normalization.LayerNorm``): that path
is looked up when they are loaded, so it gives the replacement where the
patch set is in force and the original elsewhere. Loading needs only
``importlib``, ``operator`` and ``functools``, never backport-tool.
"""

from __future__ import annotations

import copyreg
import functools
import importlib
import operator
from typing import Any

# Not in typeshed's copyreg; present since Python 3.4.
_NEWOBJ = getattr(copyreg, "__newobj__")  # noqa: B009


class _ModuleRef:
    # Pickles as importlib.import_module(name).
    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return importlib.import_module, (self.name,)


class _ClassRef:
    # Pickles as the class found at module:qualname when it is loaded. The
    # class object itself cannot be pickled by reference while patched: pickle
    # checks that its name leads back to it, and the name leads to the
    # replacement.
    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    def __reduce__(self) -> tuple[Any, ...]:
        return operator.attrgetter(self.qualname), (_ModuleRef(self.module),)


class _New:
    # The callable of an instance's reduction: called (copy, deepcopy) it
    # makes a new instance of the replacement itself; pickled, it becomes
    # cls.__new__(cls, *args) with cls looked up by the target's path.
    def __init__(self, cls: type, module: str, qualname: str, args: tuple[Any, ...]) -> None:
        self.cls = cls
        self.path = _ClassRef(module, qualname)
        self.args = args

    def __call__(self) -> object:
        return self.cls.__new__(self.cls, *self.args)

    def __reduce__(self) -> tuple[Any, ...]:
        new = operator.methodcaller("__new__", self.path, *self.args)
        return functools.partial, (new, self.path)


def pickle_as(replacement: type, module: str, qualname: str) -> None:
    """Make instances of ``replacement`` (exactly that class) pickle as
    instances of the class at ``module:qualname``. It stays so after revert:
    the path then gives the original, which is still right to load. Copies
    (``copy.copy``, ``copy.deepcopy``) stay instances of ``replacement``."""

    def reduce(obj: object) -> Any:
        # Protocol 2 is torch.save's. Its __newobj__ call cannot name another
        # class (pickle checks args[0]), so the call is made by _New.
        made: Any = obj.__reduce_ex__(2)
        if not isinstance(made, tuple) or len(made) < 2 or made[0] is not _NEWOBJ:
            return made
        args = made[1]
        if not args or args[0] is not type(obj):
            return made
        return (_New(replacement, module, qualname, tuple(args[1:])), (), *made[2:])

    copyreg.pickle(replacement, reduce)

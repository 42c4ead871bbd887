"""Pickling of instances of a class target's replacement.

The replacement lives in a backport module, which a process without the patch
set cannot import. Its instances therefore pickle as instances of the class
at the target's path (``torch.nn.modules.normalization.LayerNorm``): that path
is looked up when they are loaded, so it gives the replacement where the
patch set is in force and the original elsewhere. Loading needs only
``importlib.import_module`` and ``operator``, never backport-tool.
"""

from __future__ import annotations

import copyreg
import importlib
import operator
from typing import Any

# Not in typeshed's copyreg; present since Python 3.4.
_NEWOBJ = getattr(copyreg, "__newobj__")  # noqa: B009
_NEWOBJ_EX = getattr(copyreg, "__newobj_ex__")  # noqa: B009


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


def pickle_as(replacement: type, module: str, qualname: str) -> None:
    """Make instances of ``replacement`` (exactly that class) pickle as
    instances of the class at ``module:qualname``. It stays so after revert:
    the path then gives the original, which is still right to load."""

    def reduce(obj: object) -> Any:
        # Protocol 2 is torch.save's. Its __newobj__ call cannot name another
        # class (pickle checks args[0]), so the same cls.__new__(cls, ...) call
        # is spelled with methodcaller, the class given by its path.
        made: Any = obj.__reduce_ex__(2)
        if not isinstance(made, tuple) or len(made) < 2 or not made[1]:
            return made
        func, args = made[0], made[1]
        if args[0] is not type(obj):
            return made
        cls = _ClassRef(module, qualname)
        if func is _NEWOBJ:
            new = operator.methodcaller("__new__", cls, *args[1:])
        elif func is _NEWOBJ_EX:
            new = operator.methodcaller("__new__", cls, *args[1], **args[2])
        else:
            return made
        return (new, (cls,), *made[2:])

    copyreg.pickle(replacement, reduce)

from __future__ import annotations

import inspect
import itertools
import random
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backport_tool.fitting import (
    Bound,
    bind_class_cell,
    misfits,
    unwritten,
    uses_zero_argument_super,
)

# --- misfits: the table -------------------------------------------------------


def _function(params: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(f"def f{params}:\n    pass\n", namespace)
    function: Callable[..., Any] = namespace["f"]
    return function


MISFITS = [
    # Same shape, or only positional-only names changed: callers cannot tell.
    ("(a, b)", "(a, b)", []),
    ("(a, b, /)", "(x, y, /)", []),
    ("(a, b, /)", "(x, y)", []),
    ("(a, x=0, /)", "(a, /, x=0, **kw)", []),
    ("(a, *, k)", "(a, k)", []),
    ("(a, *, k)", "(a, *, k=0)", []),
    ("(a, b=1, *, c=2)", "(a, b=1, *, c=2, d=3)", []),
    ("(a, /, **kw)", "(a, /, **kw)", []),
    # A keyword that landed in the original's **kw may reach a named parameter.
    ("(a, /, **kw)", "(x, /, *, a=0, **kw)", []),
    # A keyword a positional-only parameter's name lands in **kw: both ways here.
    ("(**kw)", "(a=0, /, **kw)", []),
    # *args with **kwargs accepts everything.
    ("(a, *args, **kwargs)", "(*args, **kwargs)", []),
    ("(a, /, b, *, c, **kw)", "(*args, **kwargs)", []),
    # Positional count, *args and **kwargs.
    ("(a, b, /)", "(x, /)", ["it takes 1 positional arguments, callers may pass 2"]),
    ("(a, *args)", "(a)", ["it has no *args, callers may pass any number of arguments"]),
    ("(a, **kwargs)", "(a)", ["it has no **kwargs, callers may pass any keyword"]),
    (
        "(self, x)",
        "(self)",
        [
            "it takes 1 positional arguments, callers may pass 2",
            "it has no keyword parameter 'x', callers may pass x=",
        ],
    ),
    # **kwargs covers a keyword it lacks, but not passing it by position.
    ("(a, b)", "(a, **kwargs)", ["it takes 1 positional arguments, callers may pass 2"]),
    # *args covers an extra positional, but not passing it by keyword.
    ("(a, b)", "(a, *args)", ["it has no keyword parameter 'b', callers may pass b="]),
    ("(a, b)", "(a, c)", ["it has no keyword parameter 'b', callers may pass b="]),
    ("(a, b)", "(a, c, **kw)", ["'c' has no default, callers may pass b= instead"]),
    # ... and with a default, b= lands in **kw while c keeps its default.
    (
        "(self, x, scale=1.0)",
        "(self, x, factor=1.0, **kw)",
        [
            "it takes positional argument 3 as 'factor', callers may pass it as scale=, "
            "which lands in **kw instead"
        ],
    ),
    # Positional-only in the replacement, where callers may use the name.
    (
        "(a, b)",
        "(a, b, /)",
        [
            "it takes 'a' by position only, callers may pass a=",
            "it takes 'b' by position only, callers may pass b=",
        ],
    ),
    ("(a, /, b)", "(a, b, /, **kw)", ["it takes 'b' by position only, callers may pass b="]),
    # ... even where **kw would take the keyword, and the parameter its default.
    ("(a, /, b=0)", "(a, b=0, /, **kw)", ["it takes 'b' by position only, callers may pass b="]),
    ("(a, /, *, k)", "(a, k, /)", ["it takes 'k' by position only, callers may pass k="]),
    ("(a, /, *, k)", "(x, /, *, k)", []),
    ("(a, /, *, k)", "(x, /, k)", []),
    ("(a, /, k)", "(a, /, *, k)", ["it takes 1 positional arguments, callers may pass 2"]),
    (
        "(a, k)",
        "(k, /, *, a)",
        [
            "it takes 1 positional arguments, callers may pass 2",
            "it takes 'a' by keyword only, callers may pass it as positional argument 1",
            "it takes 'k' by position only, callers may pass k=",
            "it takes 'k' as positional argument 1, callers may pass it as positional argument 2",
        ],
    ),
    # Keyword-only in the replacement, where callers may pass it by position.
    (
        "(a, b)",
        "(a, *args, b)",
        ["it takes 'b' by keyword only, callers may pass it as positional argument 2"],
    ),
    ("(a, b)", "(a, *, b)", ["it takes 1 positional arguments, callers may pass 2"]),
    # The same name at another position.
    (
        "(a, b)",
        "(b, a)",
        [
            "it takes 'a' as positional argument 2, callers may pass it as positional argument 1",
            "it takes 'b' as positional argument 1, callers may pass it as positional argument 2",
        ],
    ),
    (
        "(a, b=1)",
        "(a, x=0, b=1)",
        ["it takes 'b' as positional argument 3, callers may pass it as positional argument 2"],
    ),
    (
        "(a, *args, k)",
        "(a, k, *args)",
        [
            "it takes 'k' as positional argument 2, "
            "callers may pass k= after any number of positional arguments"
        ],
    ),
    (
        "(a, /, **kw)",
        "(a, **kw)",
        ["it takes 'a' as positional argument 1, callers may pass a= after 1 positional arguments"],
    ),
    # Defaults: what callers may leave out needs one.
    ("(a, b=1)", "(a, b)", ["'b' has no default, callers may leave out b"]),
    ("(a, *, k=0)", "(a, *, k)", ["'k' has no default, callers may leave out k"]),
    ("(a, b=1, /)", "(a, b, /)", ["'b' has no default, callers may leave out b"]),
    ("(a, b=1, /)", "(a, c, /)", ["'c' has no default, callers may leave out b"]),
    # Required by the replacement, never (or not always) passed by callers.
    ("(a)", "(a, b)", ["it requires 'b', which callers never pass"]),
    ("(a)", "(a, *, b)", ["it requires 'b', which callers never pass"]),
    ("(a, b, /)", "(a, b, /, c)", ["it requires 'c', which callers never pass"]),
    (
        "(a, *args)",
        "(a, b)",
        [
            "it has no *args, callers may pass any number of arguments",
            "it requires 'b', which callers may leave out",
        ],
    ),
    ("(*args)", "(a, *args)", ["it requires 'a', which callers may leave out"]),
    (
        "(**kw)",
        "(*, a)",
        [
            "it has no **kw, callers may pass any keyword",
            "it requires 'a', which callers may leave out",
        ],
    ),
]


@pytest.mark.parametrize(("original", "replacement", "expected"), MISFITS)
def test_misfits_names_every_call_the_replacement_cannot_take(
    original: str, replacement: str, expected: list[str]
) -> None:
    assert misfits(_function(original), _function(replacement)) == expected


def test_misfits_cannot_judge_what_has_no_signature() -> None:
    assert misfits(_function("(a)"), object()) == []


def test_misfits_compares_classmethods_and_staticmethods_by_their_function() -> None:
    # A classmethod with its cls parameter, as a C type's text signature shows it.
    assert misfits(classmethod(_function("(cls, x)")), classmethod(_function("(cls, x)"))) == []
    assert misfits(vars(dict)["fromkeys"], classmethod(_function("(cls, keys, value=None)"))) == []
    assert misfits(staticmethod(_function("(x, y=1)")), staticmethod(_function("(x)"))) == [
        "it takes 1 positional arguments, callers may pass 2",
        "it has no keyword parameter 'y', callers may pass y=",
    ]


def test_misfits_takes_the_declared_signature_of_an_original_that_has_none() -> None:
    builtin = vars(object)["__init_subclass__"]  # no text signature
    assert misfits(builtin, _function("(cls)")) == []
    assert misfits(builtin, _function("(cls, /)"), "(cls, /, **kwargs)") == [
        "it has no **kwargs, callers may pass any keyword"
    ]
    assert misfits(builtin, _function("(cls, /, tag=None, **kw)"), "(cls, /, **kwargs)") == []
    assert misfits(builtin, _function("(cls, /, *, tag, **kw)"), "(cls, /, **kwargs)") == [
        "it requires 'tag', which callers may leave out"
    ]
    # A signature the original has wins over a declared one.
    assert misfits(_function("(a)"), _function("(a)"), "(a, b)") == []


# --- misfits: cross-checked against Signature.bind -------------------------------

P = inspect.Parameter
_NAMES = ("a", "b", "c")
_KINDS = (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)
# Every call over the names in use: 0 to 4 positional arguments (one more than
# any signature names) and any set of keywords, "z" a name no parameter has.
_CALLS = [
    (count, keywords)
    for count in range(5)
    for size in range(5)
    for keywords in itertools.combinations((*_NAMES, "z"), size)
]


def _signatures(most: int) -> list[inspect.Signature]:
    found = []
    for length in range(most + 1):
        for names in itertools.permutations(_NAMES, length):
            for kinds in itertools.combinations_with_replacement(_KINDS, length):
                for defaults in itertools.product((False, True), repeat=length):
                    positional = [
                        d for k, d in zip(kinds, defaults, strict=True) if k is not P.KEYWORD_ONLY
                    ]
                    if positional != sorted(positional):
                        continue  # a default before a required positional
                    params = [
                        P(n, k, default=0 if d else P.empty)
                        for n, k, d in zip(names, kinds, defaults, strict=True)
                    ]
                    cut = len(positional)
                    for var_positional, var_keyword in itertools.product((False, True), repeat=2):
                        found.append(
                            inspect.Signature(
                                [
                                    *params[:cut],
                                    *([P("args", P.VAR_POSITIONAL)] if var_positional else []),
                                    *params[cut:],
                                    *([P("kwargs", P.VAR_KEYWORD)] if var_keyword else []),
                                ]
                            )
                        )
    return found


_Bound = inspect.BoundArguments | None
_Binds = list[_Bound]


def _bind(signature: inspect.Signature, count: int, keywords: tuple[str, ...]) -> _Bound:
    """How a call of ``count`` positional arguments and ``keywords`` binds, its
    values telling which argument went where; None when it is refused."""
    args = [("pos", i) for i in range(count)]
    kwargs = {k: ("kw", k) for k in keywords}
    var_keyword = next((p for p in signature.parameters.values() if p.kind is P.VAR_KEYWORD), None)
    # Python puts a keyword named like a positional-only parameter in
    # **kwargs; Signature.bind refuses it before 3.13 when that parameter is
    # not passed by position, so such keywords go to **kwargs by hand.
    aside = {}
    if var_keyword is not None:
        for name, param in signature.parameters.items():
            if param.kind is P.POSITIONAL_ONLY and name in kwargs:
                aside[name] = kwargs.pop(name)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return None
    if aside:
        assert var_keyword is not None
        bound.arguments[var_keyword.name] = {**bound.arguments.get(var_keyword.name, {}), **aside}
    return bound


def _binds(signature: inspect.Signature) -> _Binds:
    return [_bind(signature, count, keywords) for count, keywords in _CALLS]


def _fits(
    original: inspect.Signature, theirs: _Binds, replacement: inspect.Signature, mine: _Binds
) -> bool:
    """Every call the original takes binds on the replacement, and an argument
    bound to a named parameter of the original (not positional-only) reaches
    the replacement's parameter of that name, where it has one, and no other
    named parameter where it has none (passed by name it would land in
    ``**kwargs``, passed by position in that parameter)."""
    named = {
        p.name
        for p in replacement.parameters.values()
        if p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)
    }
    for before, after in zip(theirs, mine, strict=True):
        if before is None:
            continue
        if after is None:
            return False
        for name, value in before.arguments.items():
            if original.parameters[name].kind not in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY):
                continue
            if name in named:
                if after.arguments.get(name) != value:
                    return False
            elif any(after.arguments.get(other) == value for other in named):
                return False
    return True


def _callable(signature: inspect.Signature) -> Callable[..., None]:
    def function(*args: object, **kwargs: object) -> None:
        pass

    function.__signature__ = signature  # type: ignore[attr-defined]
    return function


def test_misfits_is_empty_exactly_when_every_call_binds_on_the_replacement() -> None:
    small = _signatures(1)
    large = _signatures(3)
    binds = {id(s): _binds(s) for s in [*small, *large]}
    functions = {id(s): _callable(s) for s in [*small, *large]}
    # Every pair of signatures of one parameter; then pairs of up to three,
    # half of them over the same names (where most replacements fit).
    pairs = list(itertools.product(small, small))
    rng = random.Random(20240611)
    by_names: dict[frozenset[str], list[inspect.Signature]] = {}
    for signature in large:
        by_names.setdefault(frozenset(signature.parameters) - {"args", "kwargs"}, []).append(
            signature
        )
    for _ in range(3000):
        original = rng.choice(large)
        pairs.append((original, rng.choice(large)))
        names = frozenset(original.parameters) - {"args", "kwargs"}
        pairs.append((original, rng.choice(by_names[names])))
    outcomes = {True: 0, False: 0}
    for original, replacement in pairs:
        fits = _fits(original, binds[id(original)], replacement, binds[id(replacement)])
        found = misfits(functions[id(original)], functions[id(replacement)])
        assert (not found) == fits, (str(original), str(replacement), found)
        outcomes[fits] += 1
    assert min(outcomes.values()) > 1000, outcomes


# --- the source that ran -------------------------------------------------------


def _load(path: Path, text: str) -> tuple[types.ModuleType, bytes]:
    """Execute ``text`` written to ``path`` as the engine runs a backport
    module: compiled from the bytes read, which are returned."""
    path.write_text(text)
    source = path.read_bytes()
    module = types.ModuleType("_fitting_backport")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)
    return module, source


def _classes() -> tuple[type, type]:
    class Base:
        def greet(self, name: str) -> str:
            return f"hello {name}"

    class Widget(Base):
        def greet(self, name: str) -> str:
            return "widget"

    return Base, Widget


def _bound(result: Bound | str) -> Callable[..., Any]:
    assert isinstance(result, Bound), result
    return result.function


GREET = '''
def greet(self, name: str) -> str:
    """Greets, then lets the parent greet too."""
    return "{version} " + super().greet(name)
'''


def test_a_method_with_zero_argument_super_is_rebuilt_for_its_class(tmp_path: Path) -> None:
    module, source = _load(tmp_path / "fix.py", GREET.format(version="fixed"))
    _, widget = _classes()
    assert uses_zero_argument_super(module.greet, source)
    with pytest.raises(RuntimeError, match="__class__ cell not found"):
        module.greet(widget(), "x")
    rebuilt = _bound(bind_class_cell(module.greet, widget, source.decode()))
    widget.greet = rebuilt  # type: ignore[attr-defined]
    assert widget().greet("x") == "fixed hello x"
    assert rebuilt.__doc__ == "Greets, then lets the parent greet too."
    assert rebuilt.__qualname__ == "greet"
    if sys.version_info >= (3, 11):
        assert rebuilt.__code__.co_qualname == "greet"
    assert rebuilt.__code__.co_filename == str(tmp_path / "fix.py")


def test_the_rebuilt_method_comes_from_the_source_that_ran_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fix.py"
    module, source = _load(path, GREET.format(version="pinned"))
    # Changed after its bytes were hashed and run: reading the file now would
    # compile the new text.
    path.write_text(GREET.format(version="edited"))
    assert "edited" in inspect.getsource(module.greet)
    _, widget = _classes()
    widget.greet = _bound(bind_class_cell(module.greet, widget, source))  # type: ignore[attr-defined]
    assert widget().greet("x") == "pinned hello x"


def test_a_method_defined_in_a_class_of_the_backport_is_rebound(tmp_path: Path) -> None:
    text = "class Fix:\n    def greet(self, name):\n        return 'fix ' + super().greet(name)\n"
    module, source = _load(tmp_path / "fix.py", text)
    _, widget = _classes()
    widget.greet = _bound(bind_class_cell(module.Fix.greet, widget, source))  # type: ignore[attr-defined]
    assert widget().greet("x") == "fix hello x"


def test_a_rebuilt_method_reads_the_private_names_it_read_when_it_ran(tmp_path: Path) -> None:
    # Compiled in a stand-in class, `self.__seen` and `__helper` were mangled
    # to that class's names: the rebuilt method failed where the function ran.
    text = (
        "def __helper(v):\n    return v * 10\n\n"
        "def greet(self, name):\n"
        "    self.__seen = name\n"
        "    return str(__helper(1)) + ' ' + super().greet(name)\n\n"
        "class Fix:\n"
        "    def greet(self, name):\n"
        "        self.__seen = name\n"
        "        return 'fix ' + super().greet(name)\n"
    )
    module, source = _load(tmp_path / "fix.py", text)
    _, widget = _classes()
    widget.greet = _bound(bind_class_cell(module.greet, widget, source))  # type: ignore[attr-defined]
    made = widget()
    assert made.greet("x") == "10 hello x"
    assert vars(made) == {"__seen": "x"}
    widget.greet = _bound(bind_class_cell(module.Fix.greet, widget, source))  # type: ignore[attr-defined]
    made = widget()
    assert made.greet("y") == "fix hello y"
    assert vars(made) == {"_Fix__seen": "y"}


def test_the_future_imports_of_the_module_still_apply(tmp_path: Path) -> None:
    text = (
        "from __future__ import annotations\n\n"
        "def greet(self, name):\n"
        "    def shout(text: NotDefinedAnywhere) -> str:\n"
        "        return text.upper()\n"
        "    return shout(super().greet(name))\n"
    )
    module, source = _load(tmp_path / "fix.py", text)
    _, widget = _classes()
    widget.greet = _bound(bind_class_cell(module.greet, widget, source))  # type: ignore[attr-defined]
    assert widget().greet("x") == "HELLO X"


WRAPPED = """
import functools

CALLS = []


def logged(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        CALLS.append(function.__name__)
        return function(*args, **kwargs)

    return wrapper


class tools:
    logged = logged


@tools.logged
@logged
def greet(self, name):
    return "fixed " + super().greet(name)
"""


def test_a_method_behind_wraps_style_decorators_is_rebuilt_and_decorated_again(
    tmp_path: Path,
) -> None:
    module, source = _load(tmp_path / "fix.py", WRAPPED)
    _, widget = _classes()
    assert uses_zero_argument_super(module.greet, source)
    module.greet.note = "kept"
    rebuilt = _bound(bind_class_cell(module.greet, widget, source))
    widget.greet = rebuilt  # type: ignore[attr-defined]
    assert widget().greet("x") == "fixed hello x"
    assert module.CALLS == ["greet", "greet"]
    assert rebuilt.note == "kept"  # type: ignore[attr-defined]
    assert inspect.unwrap(rebuilt) is not inspect.unwrap(module.greet)


def test_a_method_behind_a_decorator_that_makes_no_function_is_rebuilt(tmp_path: Path) -> None:
    text = (
        "import functools\n\n"
        "@functools.cache\n"
        "def greet(self, name):\n"
        "    return 'cached ' + super().greet(name)\n"
    )
    module, source = _load(tmp_path / "fix.py", text)
    _, widget = _classes()
    assert uses_zero_argument_super(module.greet, source)
    rebuilt = _bound(bind_class_cell(module.greet, widget, source))
    widget.greet = rebuilt  # type: ignore[attr-defined]
    assert widget().greet("x") == "cached hello x"
    assert rebuilt.cache_info().misses == 1  # type: ignore[attr-defined]
    assert module.greet.cache_info().misses == 0


def test_a_method_behind_decorators_that_return_it_is_rebuilt_without_them(
    tmp_path: Path,
) -> None:
    text = (
        "MARKED = []\n\n"
        "def mark(function):\n"
        "    MARKED.append(function)\n"
        "    function.marked = True\n"
        "    return function\n\n"
        "@mark\n"
        "def greet(self, name):\n"
        "    return 'marked ' + super().greet(name)\n"
    )
    module, source = _load(tmp_path / "fix.py", text)
    _, widget = _classes()
    rebuilt = _bound(bind_class_cell(module.greet, widget, source))
    widget.greet = rebuilt  # type: ignore[attr-defined]
    assert widget().greet("x") == "marked hello x"
    assert rebuilt.marked is True  # type: ignore[attr-defined]
    marked = module.MARKED
    assert marked == [module.greet]  # not run again


REFUSED = [
    (
        "import functools\n\n"
        "def tagged(label):\n"
        "    def decorate(function):\n"
        "        @functools.wraps(function)\n"
        "        def wrapper(*args, **kwargs):\n"
        "            return function(*args, **kwargs)\n"
        "        return wrapper\n"
        "    return decorate\n\n"
        "@tagged('x')\n"
        "def greet(self, name):\n"
        "    return super().greet(name)\n",
        "its decorator @tagged('x') is not a plain name, and the function could only be "
        "rebuilt by evaluating it again",
    ),
    (
        "def bare(function):\n"
        "    def wrapper(*args, **kwargs):\n"
        "        return function(*args, **kwargs)\n"
        "    return wrapper\n\n"
        "@bare\n"
        "def greet(self, name):\n"
        "    return super().greet(name)\n",
        "it is wrapped by a decorator that does not keep the function it wraps as "
        "__wrapped__ (functools.wraps does)",
    ),
    (
        "import functools\n\n"
        "def _greet(self, name):\n"
        "    return super().greet(name)\n\n"
        "def greet(*args, **kwargs):\n"
        "    return _greet(*args, **kwargs)\n\n"
        "functools.update_wrapper(greet, _greet)\n",
        "it wraps the function that calls super() other than with decorators, so the "
        "wrapper cannot be made again",
    ),
    (
        "def make(prefix):\n"
        "    def greet(self, name):\n"
        "        return prefix + super().greet(name)\n"
        "    return greet\n\n"
        "greet = make('made ')\n",
        "it uses prefix from the function it is defined in",
    ),
    (
        "def greet(self, name):\n    return super(type(self), self).greet(name)\n",
        "it does not call super() without arguments",
    ),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_a_method_that_cannot_be_rebuilt_says_why(tmp_path: Path, text: str, reason: str) -> None:
    module, source = _load(tmp_path / "fix.py", text)
    _, widget = _classes()
    assert bind_class_cell(module.greet, widget, source) == reason


def test_a_decorator_gone_from_the_globals_is_refused(tmp_path: Path) -> None:
    module, source = _load(tmp_path / "fix.py", WRAPPED)
    del module.tools
    _, widget = _classes()
    assert bind_class_cell(module.greet, widget, source) == (
        "its decorator @tools.logged is no longer in its module's globals"
    )


def test_a_decorator_name_bound_again_later_is_refused(tmp_path: Path) -> None:
    # The module applied one decorator; its name now means another. Applying
    # that again would install something the module never defined.
    text = (
        "import functools\n\n"
        "def tag(label):\n"
        "    def deco(f):\n"
        "        @functools.wraps(f)\n"
        "        def wrapper(*args, **kwargs):\n"
        "            return (label, f(*args, **kwargs))\n"
        "        return wrapper\n"
        "    return deco\n\n"
        "deco = tag('A')\n\n"
        "@deco\n"
        "def greet(self, name):\n"
        "    return super().greet(name)\n\n"
        "def deco(f):\n"
        "    @functools.wraps(f)\n"
        "    def other(*args, **kwargs):\n"
        "        return ('B', f(*args, **kwargs))\n"
        "    return other\n"
    )
    module, source = _load(tmp_path / "fix.py", text)
    _, widget = _classes()
    assert bind_class_cell(module.greet, widget, source) == (
        "its decorators, looked up again by name, wrap it differently from the module's own "
        "greet (a decorator's name was bound to something else after it was applied); keep "
        "each decorator's name bound to the decorator"
    )


def test_a_definition_missing_from_the_source_is_refused(tmp_path: Path) -> None:
    module, _ = _load(tmp_path / "fix.py", GREET.format(version="fixed"))
    _, widget = _classes()
    reason = "its definition is not in the source of its backport module as it ran"
    assert bind_class_cell(module.greet, widget, "x = 1\n") == reason
    assert bind_class_cell(module.greet, widget, None) == reason
    # The same name on another line is another definition.
    assert bind_class_cell(module.greet, widget, GREET.format(version="x").lstrip()) == reason
    assert bind_class_cell(len, widget, "") == (
        "it is not a function, nor wraps one, defined in its backport module"
    )


def test_uses_zero_argument_super_reads_the_source_that_ran(tmp_path: Path) -> None:
    path = tmp_path / "fix.py"
    module, source = _load(path, GREET.format(version="fixed"))
    path.write_text("")
    assert uses_zero_argument_super(module.greet, source)
    # Without the source it cannot tell, and says it does.
    assert uses_zero_argument_super(module.greet, None)
    two, two_source = _load(path, "def greet(self, name):\n    return super(A, self).greet(name)\n")
    assert not uses_zero_argument_super(two.greet, two_source)
    plain, plain_source = _load(path, "def greet(self, name):\n    return name\n")
    assert not uses_zero_argument_super(plain.greet, plain_source)
    assert not uses_zero_argument_super(len, None)


SKELETON = '''
def fix(x):
    """To do."""
    raise NotImplementedError
'''


def test_unwritten_reads_the_source_that_ran(tmp_path: Path) -> None:
    path = tmp_path / "fix.py"
    module, source = _load(path, SKELETON)
    path.write_text(SKELETON.replace("raise NotImplementedError", "return x"))
    assert unwritten(module.fix, source)
    assert not unwritten(module.fix, None)
    assert unwritten(NotImplemented, None)
    written, written_source = _load(path, "def fix(x):\n    return x\n")
    assert not unwritten(written.fix, written_source)
    assert not unwritten(3, written_source)

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import backport_tool
from backport_tool import ManifestError, SymbolRef, cli, load_manifest
from backport_tool.manifest import _real_file
from backport_tool.source import normalize_signature

VALID = """\
version: 1
package: torch
backports:
  - id: fix-one
    summary: a fix
    applies_to: ">=2.11.0,<2.12"
    fixed_in: "2.12.0"
    upstream:
      pr: https://example.invalid/pr/1
    module: backports/fix.py
    targets:
      - symbol: "pkg.mod:Klass.method"
        replacement: method
        signature: "(self, users: int) -> bool"
    requires:
      - "pkg.mod:Other"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "backports").mkdir(exist_ok=True)
    (tmp_path / "backports" / "fix.py").write_text("def method(self, users): return True\n")
    path = tmp_path / "manifest.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    prefix = f"{path}"
    return [p.replace(prefix, "M") for p in info.value.problems]


def test_valid_manifest_loads_into_frozen_objects(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, VALID))
    assert manifest.version == 1
    assert manifest.package == "torch"
    (backport,) = manifest.backports
    assert backport.id == "fix-one"
    assert backport.applies_to == SpecifierSet(">=2.11.0,<2.12")
    assert backport.applies_to_text == ">=2.11.0,<2.12"
    assert backport.fixed_in == Version("2.12.0")
    assert backport.upstream.pr == "https://example.invalid/pr/1"
    assert backport.module == (tmp_path / "backports" / "fix.py").resolve()
    assert backport.targets[0].symbol == SymbolRef("pkg.mod", "Klass.method")
    assert backport.requires == (SymbolRef("pkg.mod", "Other"),)
    assert backport.line == 4
    with pytest.raises(AttributeError):
        backport.id = "other"  # type: ignore[misc]


def test_the_shipped_manifest_is_valid() -> None:
    from backport_tool import default_manifest_path

    manifest = load_manifest(default_manifest_path())
    backport = manifest.get("inductor-realize-on-reuse")
    assert backport.fixed_in == Version("2.12.0")
    # On torch 2.11 the refined model is the default and the faithful port opt-in.
    assert backport.opt_in is True
    assert manifest.get("inductor-realize-on-reuse-refined").opt_in is False
    assert backport.upstream.notes is not None
    assert "2.12.0 through 2.15.0 do not contain the cost model" in " ".join(
        backport.upstream.notes.split()
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "applies_to:",
            "applies-to:",
            [
                "M:6: backports[0]['applies-to']: unknown key 'applies-to' (did you mean "
                "'applies_to'?); expected one of: id, summary, applies_to, module, targets, "
                "fixed_in, upstream, requires, status, retired_reason, sha256, opt_in",
                "M:4: backports[0]: missing required key 'applies_to'",
            ],
        ),
        (
            'fixed_in: "2.12.0"',
            "fixed_in: 2.12",
            ['M:7: backports[0].fixed_in: expected a string, got a float 2.12 (quote it: "2.12")'],
        ),
        (
            'fixed_in: "2.12.0"',
            'fixed_in: "two"',
            [
                'M:7: backports[0].fixed_in: expected a PEP 440 version such as "2.12.0", '
                "got 'two'"
            ],
        ),
        (
            'applies_to: ">=2.11.0,<2.12"',
            'applies_to: ">=2.11.0,<<2.12"',
            [
                "M:6: backports[0].applies_to: expected a PEP 440 specifier set such as "
                "\">=2.11.0,<2.12\", got '>=2.11.0,<<2.12'"
            ],
        ),
        (
            'applies_to: ">=2.11.0,<2.12"',
            'applies_to: ">=2.11.0"',
            [
                "M:7: backports[0].fixed_in: fixed_in 2.12.0 is inside applies_to '>=2.11.0': "
                "a version cannot both need the backport and already have the fix; "
                "end applies_to below 2.12.0"
            ],
        ),
        (
            '"pkg.mod:Klass.method"',
            '"pkg.mod.Klass.method"',
            [
                "M:12: backports[0].targets[0].symbol: expected a symbol "
                "'dotted.module:Dotted.qualname' (no ':' between the module and the qualified "
                "name), got 'pkg.mod.Klass.method'"
            ],
        ),
        (
            '"pkg.mod:Other"',
            "\"pkg.mod:__import__('os').system\"",
            [
                "M:16: backports[0].requires[0]: expected a symbol "
                "'dotted.module:Dotted.qualname' (qualified name part \"__import__('os')\" "
                "is not a Python identifier), got \"pkg.mod:__import__('os').system\""
            ],
        ),
        (
            "module: backports/fix.py",
            "module: ../outside.py",
            [
                "M:10: backports[0].module: expected a path inside the manifest's directory "
                "DIR, got '../outside.py'"
            ],
        ),
        (
            "module: backports/fix.py",
            "module: /etc/passwd.py",
            [
                "M:10: backports[0].module: expected a path relative to the manifest's "
                "directory, got '/etc/passwd.py'"
            ],
        ),
        (
            "module: backports/fix.py",
            "module: backports/nope.py",
            ["M:10: backports[0].module: file not found: backports/nope.py (looked in DIR)"],
        ),
        (
            "id: fix-one",
            "id: Fix_One",
            ["M:4: backports[0].id: expected an id matching [a-z0-9][a-z0-9-]*, got 'Fix_One'"],
        ),
        (
            "version: 1",
            "version: 2",
            [
                "M:1: version: expected schema version 1, got 2; this backport-tool reads "
                "schema 1 only. Hint: upgrade backport-tool"
            ],
        ),
        (
            "version: 1",
            "version: true",
            ["M:1: version: expected the integer 1, got a boolean True"],
        ),
        (
            "replacement: method",
            "replacement: 12",
            [
                "M:13: backports[0].targets[0].replacement: expected a string, got an integer 12 "
                '(quote it: "12")'
            ],
        ),
        (
            'signature: "(self, users: int) -> bool"',
            'signature: "self, users"',
            [
                "M:14: backports[0].targets[0].signature: expected a signature such as "
                "\"(self, users: int) -> bool\", got 'self, users'"
            ],
        ),
        (
            "    targets:\n      - symbol",
            "    targets: []\n    old:\n      - symbol",
            [
                "M:12: backports[0].old: unknown key 'old'; expected one of: id, summary, "
                "applies_to, module, targets, fixed_in, upstream, requires, status, "
                "retired_reason, sha256, opt_in",
                "M:11: backports[0].targets: expected a non-empty list, got a list",
            ],
        ),
        (
            "upstream:\n      pr:",
            "upstream:\n      pull:",
            [
                "M:9: backports[0].upstream.pull: unknown key 'pull'; "
                "expected one of: pr, issue, commit, notes"
            ],
        ),
    ],
)
def test_invalid_manifest_names_file_line_key_expected_and_found(
    tmp_path: Path, old: str, new: str, expected: list[str]
) -> None:
    assert old in VALID
    found = problems(tmp_path, VALID.replace(old, new, 1))
    assert [p.replace(str(tmp_path), "DIR") for p in found] == expected


def test_duplicate_ids_and_duplicate_keys(tmp_path: Path) -> None:
    entry = VALID.split("backports:\n", 1)[1]
    text = VALID + entry.replace("  - id: fix-one\n", "  - id: fix-one\n    id: fix-one\n")
    assert problems(tmp_path, text) == [
        "M:18: backports[1].id: duplicate key 'id'; keep one",
        "M:17: backports[1].id: duplicate id 'fix-one'; backports[0] already uses it",
    ]


def test_a_module_path_that_is_a_directory_says_so(tmp_path: Path) -> None:
    (tmp_path / "backports" / "pkg.py").mkdir(parents=True)
    text = VALID.replace("module: backports/fix.py", "module: backports/pkg.py")
    assert [p.replace(str(tmp_path), "DIR") for p in problems(tmp_path, text)] == [
        "M:10: backports[0].module: a directory, not a file: backports/pkg.py (looked in DIR)"
    ]


def test_a_merge_key_is_not_a_duplicate_of_the_keys_it_overrides(tmp_path: Path) -> None:
    # YAML's `<<: *anchor` copies an entry; the keys written after it win.
    text = VALID.replace("  - id: fix-one\n", "  - &common\n    id: fix-one\n") + (
        "  - <<: *common\n    id: fix-two\n    targets:\n"
        '      - symbol: "pkg.mod:Klass.other"\n        replacement: method\n'
    )
    manifest = load_manifest(write(tmp_path, text))
    one, two = manifest.backports
    assert (one.id, two.id, two.summary, two.applies_to_text) == (
        "fix-one",
        "fix-two",
        "a fix",
        ">=2.11.0,<2.12",
    )
    assert [str(t.symbol) for t in two.targets] == ["pkg.mod:Klass.other"]
    # Written twice by hand, a key is still one to remove.
    twice = text.replace("    id: fix-two\n", "    id: fix-two\n    id: fix-three\n")
    assert problems(tmp_path, twice) == ["M:20: backports[1].id: duplicate key 'id'; keep one"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["M: <document>: expected a mapping, got null"]),
        ("- 1\n- 2\n", ["M:1: <document>: expected a mapping, got a list"]),
        (
            "version: 1\npackage: [torch\n",
            ["M:3:1: invalid YAML: expected ',' or ']', but got '<stream end>'"],
        ),
        (
            "version: 1\nfoo: !!python/object:os.system {}\n",
            [
                "M:2:6: invalid YAML: could not determine a constructor for the tag "
                "'tag:yaml.org,2002:python/object:os.system'"
            ],
        ),
        (
            "version: 1\n",
            [
                "M:1: <document>: missing required key 'package'",
                "M:1: <document>: missing required key 'backports'",
            ],
        ),
    ],
)
def test_unreadable_documents(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "nope.yaml")
    assert str(info.value) == f"invalid manifest: {tmp_path}/nope.yaml: file not found"
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("version: 1 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ManifestError) as info:
        load_manifest(bad)
    assert info.value.problems == (f"{bad}: not UTF-8 text (invalid byte at offset 16)",)


def test_module_symlink_escaping_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "evil.py"
    outside.write_text("print('pwned')\n")
    path = write(root, VALID)
    (root / "backports" / "link.py").symlink_to(outside)
    path.write_text(VALID.replace("backports/fix.py", "backports/link.py"))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.problems == (
        f"{path}:10: backports[0].module: expected a path inside the manifest's directory "
        f"{root}, got 'backports/link.py'",
    )


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("id: fix-one", "id: BAD").replace("2.12.0", "x"))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value).startswith(f"invalid manifest (2 problems):\n  - {path}:4:")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("(self, users: int) -> bool", "(self, users:int)->bool"),
        ("(self, users: 'int') -> 'bool'", "(self, users: int) -> bool"),
        ("(self, *, graph_reuse: bool = True)", "(self, *, graph_reuse: bool=True)"),
    ],
)
def test_signature_normalization(a: str, b: str) -> None:
    assert normalize_signature(a) == normalize_signature(b)


def test_signature_normalization_keeps_real_differences() -> None:
    assert normalize_signature("(self, users: int) -> bool") != normalize_signature(
        "(self, users: int, *, graph_reuse: bool = True) -> bool"
    )


@pytest.mark.parametrize(
    "text", ["[" * 100_000 + "]" * 100_000, "[" * 100_000, "- " * 100_000 + "x"]
)
def test_nesting_too_deep_to_parse_is_a_manifest_error(tmp_path: Path, text: str) -> None:
    # Well inside the size limit, deep enough for pyyaml's recursive composer.
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as raised:
        load_manifest(path)
    assert raised.value.problems == (
        f"{path}: nested too deeply to read; a manifest is a few levels deep",
    )


def test_keys_of_one_spelling_are_one_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text('version: 1\npackage: torch\nbackports: []\n1: a\n"1": b\n')
    with pytest.raises(ManifestError) as raised:
        load_manifest(path)
    assert [p for p in raised.value.problems if "duplicate" in p] == [
        f"{path}:5: ['1']: duplicate key '1'; keep one"
    ]


@pytest.mark.parametrize("name", ["\u212aorch", "tor ch", "-torch", "torch_"])
def test_package_names_are_ascii_pep_508_names(tmp_path: Path, name: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"version: 1\npackage: {name!r}\nbackports: []\n", encoding="utf-8")
    with pytest.raises(ManifestError) as raised:
        load_manifest(path)
    assert raised.value.problems == (
        f"{path}:2: package: expected a distribution name such as 'torch', got {name!r}",
    )


def test_copies_are_symbols_other_than_the_target(tmp_path: Path) -> None:
    copies = VALID.replace(
        '        signature: "(self, users: int) -> bool"\n',
        '        signature: "(self, users: int) -> bool"\n'
        '        copies: ["pkg.other:method", "pkg.mod:Sub.method"]\n',
    )
    target = load_manifest(write(tmp_path, copies)).backports[0].targets[0]
    assert target.copies == (SymbolRef("pkg.other", "method"), SymbolRef("pkg.mod", "Sub.method"))
    assert target.sites == (target.symbol, *target.copies)
    itself = copies.replace('"pkg.other:method"', '"pkg.mod:Klass.method"')
    assert problems(tmp_path, itself) == [
        "M:15: backports[0].targets[0].copies: expected other bindings than the target "
        "itself, got 'pkg.mod:Klass.method'"
    ]
    assert problems(tmp_path, copies.replace('"pkg.other:method"', '"not a symbol"')) == [
        "M:15: backports[0].targets[0].copies[0]: expected a symbol "
        "'dotted.module:Dotted.qualname' (no ':' between the module and the qualified name), "
        "got 'not a symbol'"
    ]


def test_conditional_copies_are_copies_listed_once(tmp_path: Path) -> None:
    text = VALID.replace(
        '        signature: "(self, users: int) -> bool"\n',
        '        signature: "(self, users: int) -> bool"\n'
        '        copies: ["pkg.other:method"]\n'
        '        conditional_copies: ["pkg.maybe:method"]\n',
    )
    target = load_manifest(write(tmp_path, text)).backports[0].targets[0]
    assert target.copies == (SymbolRef("pkg.other", "method"), SymbolRef("pkg.maybe", "method"))
    assert target.conditional == frozenset({SymbolRef("pkg.maybe", "method")})
    both = text.replace('"pkg.maybe:method"', '"pkg.other:method"')
    assert problems(tmp_path, both) == [
        "M:16: backports[0].targets[0].conditional_copies: expected sites that copies: does "
        "not list too (a copy is either bound always or only in some environments), got "
        "'pkg.other:method'"
    ]
    itself = text.replace('"pkg.maybe:method"', '"pkg.mod:Klass.method"')
    assert problems(tmp_path, itself) == [
        "M:16: backports[0].targets[0].conditional_copies: expected other bindings than the "
        "target itself, got 'pkg.mod:Klass.method'"
    ]


def test_an_acknowledged_path_in_the_old_form_says_how_to_migrate(tmp_path: Path) -> None:
    old = VALID.replace(
        '        signature: "(self, users: int) -> bool"\n',
        '        signature: "(self, users: int) -> bool"\n'
        "        acknowledged: [\"pkg.tables.TABLE['key']\"]\n",
    )
    assert problems(tmp_path, old) == [
        "M:15: backports[0].targets[0].acknowledged[0]: \"pkg.tables.TABLE['key']\" is a "
        "reference path in the old form (no ':' between the module and the name). Delete the "
        "acknowledged: list, run `backport-tool check` to see the references as they are "
        "named now, and record the reviewed ones with `backport-tool lock --acknowledge`"
    ]


def _module_problem(tmp_path: Path, module: str) -> list[str]:
    path = write(tmp_path, VALID.replace("module: backports/fix.py", f"module: {module}"))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    # apply() at startup reports it, never raises (the CLI exits 2, not 3).
    report = backport_tool.apply(path)
    assert report.error == f"invalid manifest: {info.value.problems[0]}; nothing was applied"
    assert cli.main(["check", "--manifest", str(path)]) == 2
    return [p.replace(str(tmp_path), "DIR") for p in info.value.problems]


def test_a_module_path_with_a_nul_byte_is_a_problem(tmp_path: Path) -> None:
    assert _module_problem(tmp_path, '"backports/a\\0b.py"') == [
        "DIR/manifest.yaml:10: backports[0].module: 'backports/a\\x00b.py' cannot be a file "
        "path: it contains a NUL byte; remove it"
    ]


def test_a_module_path_the_os_cannot_read_is_a_problem(tmp_path: Path) -> None:
    name = "backports/" + "a" * 300 + ".py"
    assert _module_problem(tmp_path, name) == [
        f"DIR/manifest.yaml:10: backports[0].module: {repr(name)[:77]}... cannot be read: "
        "File name too long (looked in DIR); give the path of a readable .py file"
    ]
    (tmp_path / "backports" / "loop.py").symlink_to("loop.py")
    # Python 3.13's resolve() leaves a loop as it is, and is_file() says False.
    if sys.version_info < (3, 13):
        found = (
            "'backports/loop.py' cannot be read: Symlink loop from 'DIR/backports/loop.py' "
            "(looked in DIR); give the path of a readable .py file"
        )
    else:
        found = "file not found: backports/loop.py (looked in DIR)"
    assert _module_problem(tmp_path, "backports/loop.py") == [
        f"DIR/manifest.yaml:10: backports[0].module: {found}"
    ]


def test_a_module_path_with_a_lone_surrogate_is_a_problem(tmp_path: Path) -> None:
    assert _module_problem(tmp_path, '"backports/\\ud800.py"') == [
        "DIR/manifest.yaml:10: backports[0].module: 'backports/\\ud800.py' holds the lone "
        "surrogate U+D800, which is not a character and cannot be written as UTF-8; write the "
        "character meant itself, or a \\U escape of its whole code point in a double-quoted "
        'string (such as "\\U0001F680")'
    ]


@pytest.mark.parametrize("bad", ["a\0b.py", "\ud800.py", "a" * 300 + ".py"])
@pytest.mark.parametrize("below", ["backports/", "link/", "../"])
def test_a_pickled_manifests_module_path_the_os_refuses_is_a_miss(
    tmp_path: Path, below: str, bad: str
) -> None:
    # Validation refuses such a path; the pickle's check must not raise on one either.
    write(tmp_path, VALID)
    (tmp_path / "link").symlink_to("backports")
    assert _real_file(str(tmp_path), below + bad) is None


def test_surrogate_escapes_as_json_writes_them_are_problems(tmp_path: Path) -> None:
    # json.dumps writes an emoji as "\ud83d\ude80"; YAML reads two lone surrogates.
    data = yaml.safe_load(VALID)
    data["backports"][0]["summary"] = "launch \U0001f680"
    path = write(tmp_path, json.dumps(data, indent=2))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.problems == (
        f"{path}:7: backports[0].summary: 'launch \\ud83d\\ude80' spells U+1F680 as two "
        "UTF-16 surrogate escapes, as JSON writes it, which YAML reads as two characters "
        'that cannot be written as UTF-8; write the character itself, or "\\U0001F680" in '
        "a double-quoted string",
    )
    # Printing it made status and check an internal error (exit 3).
    for command in ("status", "check"):
        assert cli.main([command, "--manifest", str(path)]) == 2
    # The character itself, or its \U escape, is what the message asks for.
    for spelling in ("launch \U0001f680", "launch \\U0001F680"):
        text = VALID.replace("summary: a fix", f'summary: "{spelling}"')
        assert load_manifest(write(tmp_path, text)).backports[0].summary == "launch \U0001f680"


def test_a_lone_surrogate_in_a_config_value_is_a_problem(tmp_path: Path) -> None:
    text = VALID.replace("        replacement: method\n", '        value: {a: ["x\\udc80"]}\n')
    text = text.replace('        signature: "(self, users: int) -> bool"\n', "")
    assert problems(tmp_path, text) == [
        "M:13: backports[0].targets[0].value.a[0]: 'x\\udc80' holds the lone surrogate U+DC80, "
        "which is not a character and cannot be written as UTF-8; write the character meant "
        "itself, or a \\U escape of its whole code point in a double-quoted string (such as "
        '"\\U0001F680")'
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # YAML 1.1 reads these as numbers unlike their text: the hint quotes the text.
        (
            "pr: https://example.invalid/pr/1",
            "commit: 0123456",
            "M:9: backports[0].upstream.commit: expected a string, got an integer 42798 "
            '(quote it: "0123456")',
        ),
        (
            "    requires:",
            "    sha256: " + "0" * 64 + "\n    requires:",
            "M:15: backports[0].sha256: expected a string, got an integer 0 "
            f'(quote it: "{"0" * 64}")',
        ),
        (
            'fixed_in: "2.12.0"',
            "fixed_in: 2.10",
            'M:7: backports[0].fixed_in: expected a string, got a float 2.1 (quote it: "2.10")',
        ),
        (
            '"pkg.mod:Other"',
            "1_000",
            "M:16: backports[0].requires[0]: expected a string, got an integer 1000 "
            '(quote it: "1_000")',
        ),
    ],
)
def test_the_quote_it_hint_shows_the_value_as_written(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in VALID
    assert problems(tmp_path, VALID.replace(old, new, 1)) == [expected]


@pytest.mark.parametrize("spec", [",", " , ", ",,"])
def test_an_applies_to_of_no_clauses_is_a_problem(tmp_path: Path, spec: str) -> None:
    # packaging reads it as the empty set, which every version is in.
    text = VALID.replace('applies_to: ">=2.11.0,<2.12"', f'applies_to: "{spec}"')
    assert problems(tmp_path, text) == [
        "M:6: backports[0].applies_to: expected a PEP 440 specifier set with at least one "
        'clause, such as ">=2.11.0,<2.12" (one with none matches every version), '
        f"got {spec!r}"
    ]

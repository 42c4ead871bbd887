"""Fuzzing the manifest loader: random YAML documents and mutations of a valid
manifest. The only exception that may escape is ManifestError, and every
problem it lists names the file and a key path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backport_tool import ManifestError
from backport_tool.manifest import parse_manifest

ROOT = Path(__file__).resolve().parent / "data" / "malformed"
PATH = ROOT / "fuzz.yaml"  # never written: parse_manifest takes the text
VALID: dict[str, Any] = {
    "version": 1,
    "package": "torch",
    "backports": [
        {
            "id": "fix",
            "summary": "a fix",
            "applies_to": ">=2.11.0,<2.12",
            "fixed_in": "2.12.0",
            "upstream": {"pr": "https://example.invalid/1", "commit": "abcdef1"},
            "module": "backports/fix.py",
            "targets": [
                {
                    "symbol": "pkg.mod:Klass.method",
                    "replacement": "method",
                    "signature": "(self, users: int) -> bool",
                    "fingerprint": "sha256:0123456789abcdef",
                    "recorded_from": ["2.11.0"],
                }
            ],
            "requires": ["pkg.mod:Other"],
        }
    ],
}

# Each problem: "<file>[:line[:col]]: <key path or description>: ..."
PROBLEM = re.compile(re.escape(str(PATH)) + r"(:\d+(:\d+)?)?: \S")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.text(alphabet="αβγ☃💥\x00\t\n\"'{}[]:&*!|>%@`", max_size=30),
    st.text(min_size=2000, max_size=5000),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=12), children, max_size=5),
    ),
    max_leaves=40,
)


def load(text: str) -> None:
    try:
        parse_manifest(text, PATH)
    except ManifestError as exc:
        problems: tuple[str, ...] | None = exc.problems
    else:
        problems = None
    if problems is not None:
        assert problems, "a ManifestError must say what is wrong"
        for problem in problems:
            assert PROBLEM.match(problem), problem


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    load(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_random_yaml_documents(document: Any) -> None:
    load(yaml.safe_dump(document, allow_unicode=True))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


MUTABLE = _paths(VALID)[1:]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MUTABLE), values, st.sampled_from(["replace", "delete", "rename"]))
def test_mutations_of_a_valid_manifest(path: tuple[Any, ...], value: Any, how: str) -> None:
    document = yaml.safe_load(yaml.safe_dump(VALID))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[f"{last}x"] = parent.pop(last)
    load(yaml.safe_dump(document, allow_unicode=True))


def test_the_valid_base_is_valid() -> None:
    # tests/data/malformed/backports/fix.py exists, so the base loads cleanly
    # and every failure above comes from a mutation.
    manifest = parse_manifest(yaml.safe_dump(VALID), PATH)
    assert manifest.backports[0].id == "fix"

"""The files of a rule pack: reading the folder, the pack's fingerprint, and its YAML.

A pack is edited by hand and may come from anyone, so its YAML is read with
limits that PyYAML's ``safe_load`` does not have.  Each is checked on the
node graph while it is composed, before any Python object is built, so a
hostile file is refused in bounded time and memory:

* **aliases** (``*name``) may add at most :data:`MAX_ALIAS_NODES` nodes to the
  document once expanded (a "billion laughs" file of a few hundred bytes
  expands to 10^9 nodes), and may not refer to the node that contains them
  (a recursive structure);
* **depth**: at most :data:`MAX_DEPTH` nested mappings and lists, aliases expanded;
* **duplicate keys** in one mapping are refused (plain YAML keeps the last one
  silently: a rule with ``when:`` twice would lose its first condition).
  Merge keys (``<<: *base``) may still be overridden by the mapping's own keys.

Every refusal is a :class:`PackYAMLError` (a :class:`yaml.YAMLError`) naming
the line; :func:`read_yaml` turns it, and any other YAML error, into a
:class:`~scoring.errors.RulePackError` that names the file too, on one line.
libyaml's parser is used when PyYAML has it (the default pack reads ~4x faster
than with ``yaml.safe_load``); composing stays in Python, where the limits are
checked.  The limits are documented for pack authors in ``rules/README.md``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode
from yaml.resolver import Resolver

from scoring.errors import RulePackError

try:  # libyaml's parser (events only: composing stays in Python, where the limits are checked)
    from yaml.cyaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: Any) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)

#: endings of the files a pack is made of (its rules, fields and metadata): what its fingerprint covers
PACK_SUFFIXES = (".yaml", ".yml")
#: nodes that aliases may add to a file once expanded
MAX_ALIAS_NODES = 10_000
#: nested mappings and lists in a file
MAX_DEPTH = 100
_MERGE_TAG = "tag:yaml.org,2002:merge"


class PackYAMLError(yaml.YAMLError):
    """A pack file breaks one of the limits above; the message names the line."""


def _line(mark: Any) -> int:
    return mark.line + 1 if mark is not None else 0


class PackLoader(_Parser, Composer, SafeConstructor, Resolver):
    """``yaml.SafeLoader`` with bounded aliases and depth, and no duplicate keys."""

    def __init__(self, stream: str | bytes) -> None:
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._open_anchors: set[str] = set()
        self._alias_nodes = 0
        self._expansions: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) once expanded

    # libyaml's parser brings its own composer; the checks below live in PyYAML's
    get_single_node = Composer.get_single_node

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if self.check_event(AliasEvent):
            target = self.anchors.get(event.anchor)
            if event.anchor in self._open_anchors:
                raise PackYAMLError(f"line {_line(event.start_mark)}: alias *{event.anchor} refers to a node that "
                                    "contains it (a recursive structure); write the value out")
            if target is not None:
                size, height = self._expanded(target)
                if self._depth + height > MAX_DEPTH:
                    raise PackYAMLError(f"line {_line(event.start_mark)}: alias *{event.anchor} makes the document "
                                        f"nested more than {MAX_DEPTH} levels deep")
                self._alias_nodes += size
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise PackYAMLError(
                        f"line {_line(event.start_mark)}: aliases (*name) expand to more than {MAX_ALIAS_NODES:,} "
                        "nodes; a pack never needs that many: write the values out")
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise PackYAMLError(f"line {_line(event.start_mark)}: nested more than {MAX_DEPTH} levels deep")
        anchor = event.anchor
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor)

    def _expanded(self, root: Node) -> tuple[int, int]:
        """Nodes in ``root`` and its depth, with every alias inside it expanded (memoised; iterative)."""
        memo = self._expansions
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, children_done = stack.pop()
            if id(node) in memo:
                continue
            kids = _children(node)
            if children_done:
                memo[id(node)] = (1 + sum(memo[id(k)][0] for k in kids),
                                  1 + max((memo[id(k)][1] for k in kids), default=0))
            else:
                stack.append((node, True))
                stack.extend((k, False) for k in kids if id(k) not in memo)
        return memo[id(root)]

    def construct_mapping(self, node: Node, deep: bool = False) -> dict:
        if isinstance(node, MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.get(key)
                except TypeError:  # unhashable: the base class says so, with the line
                    break
                if seen is not None:
                    raise PackYAMLError(f"line {_line(key_node.start_mark)}: duplicate key {key!r} "
                                        f"(first at line {seen}); YAML would silently keep only the last one")
                first[key] = _line(key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(data: str | bytes) -> Any:
    """The one document in ``data``, read within the limits above.

    Raises
    ------
    yaml.YAMLError
        :class:`PackYAMLError` for a limit, PyYAML's own errors for invalid YAML.

    Examples
    --------
    >>> load_yaml("rules: [{id: A}]")
    {'rules': [{'id': 'A'}]}
    >>> load_yaml("a: 1\\na: 2")
    Traceback (most recent call last):
    ...
    scoring.evidence.packfiles.PackYAMLError: line 2: duplicate key 'a' (first at line 1); YAML would silently keep only the last one
    """
    loader = PackLoader(data)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- pack files


def read_yaml(files: Mapping[str, bytes], rel: str) -> Any:
    """The document in pack file ``rel``, read within the limits of this module."""
    try:
        return load_yaml(files[rel])
    except PackYAMLError as exc:
        raise RulePackError(str(exc), file=rel) from None
    except yaml.YAMLError as exc:
        raise RulePackError(f"not valid YAML: {_one_line(exc)}", file=rel) from None


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's error (several lines, naming ``<byte string>``) as one line naming the line and column."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = "; ".join(p for p in (exc.context, exc.problem) if p)
        if mark is not None:
            return f"line {mark.line + 1}, column {mark.column + 1}: {what}"
        return what
    return " ".join(str(exc).split())


def read_pack_files(folder: str | Path) -> dict[str, bytes]:
    """The files of the pack folder ``folder``: relative POSIX path -> bytes, in path order
    (``__pycache__`` ignored)."""
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.relative_to(root).parts}


def fingerprint_of_files(files: Mapping[str, bytes]) -> str:
    """sha256 over a pack's YAML files (name and bytes), in name order: :attr:`RulePack.fingerprint`.

    Computed from the files alone, so a pack folder whose edit does not load
    (yet) has one too; only what the rules are made of counts (a README edit
    does not change it).
    """
    h = hashlib.sha256()
    for name in sorted(files):
        if name.endswith(PACK_SUFFIXES):
            h.update(name.encode() + b"\0" + files[name] + b"\0")
    return h.hexdigest()


def pack_name(files: Mapping[str, bytes]) -> str | None:
    """The ``name`` in a pack's ``pack.yaml`` (``files`` as :func:`read_pack_files` gives them), or None
    when there is none or it cannot be read (the full check is :func:`scoring.evidence.pack.load_pack`'s)."""
    if "pack.yaml" not in files:
        return None
    try:
        meta = read_yaml(files, "pack.yaml")
    except RulePackError:
        return None
    return str(meta["name"]) if isinstance(meta, dict) and meta.get("name") is not None else None

"""YAML as reslab reads it: the safe loader, without aliases, each key once, and a bounded number of nodes.

An alias (`*name`) repeats a node, so a few hundred bytes of nested aliases ("billion laughs") expand into
billions of values; reslab's files (configs, sweep files, run folders' config.yaml) never need one, so every
alias is refused instead of expanded. Every YAML reslab reads goes through `load`.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 1_000_000  # scalars, lists and mappings in one document; a config holds a few hundred


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing aliases, documents of more than MAX_NODES nodes and keys given twice."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"aliases (*{event.anchor}) are not allowed; write the "
                                              "values out", event.start_mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise yaml.composer.ComposerError(None, None, f"more than {MAX_NODES:,} values",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A key given twice in one mapping is an error instead of the last one winning (checked in linear time)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                twice = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the safe loader refuses it itself
                continue
            if twice:
                raise yaml.constructor.ConstructorError(None, None, f"key {key} given twice", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load(text: str | bytes) -> Any:
    """One YAML document's values; yaml.YAMLError when it is not valid, holds an alias, or is too large or deep."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise yaml.YAMLError("values nested too deeply") from None

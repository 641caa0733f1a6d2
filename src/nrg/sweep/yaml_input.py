"""YAML typed by a user (sweep configs, profiles, ``-p`` values), read strictly.

PyYAML's ``safe_load`` is too forgiving for input that decides what a GPU
measures for hours:

* a key given twice keeps the last value without a word (``repeats: 1`` then
  ``repeats: 20``), so a config can say two things and run one;
* a file of any size is parsed (a 10 MB "config" took minutes) and a few lines
  of nested aliases (a "billion laughs") expand to a value whose message is
  tens of MB when it is refused.

:func:`load` refuses all three with a :class:`~nrg.errors.ParameterError`
naming where, before anything is done. Merge keys (``<<: *base``) still
override as YAML defines; only a key written twice in one mapping is refused.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from nrg.errors import ParameterError

MAX_BYTES = 1_000_000         # a sweep config or a profile is a few KB; 1 MB is not a config
MAX_NODES = 100_000           # values after alias expansion: far above any real config
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _strict_loader() -> type:
    """A SafeLoader subclass that refuses a key repeated in one mapping (built on first use)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:   # an unhashable key: PyYAML refuses it below
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (first at line {first.line + 1}); "
                        "YAML would silently keep the last value", key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def check_size(name: str, size_bytes: int, max_bytes: int = MAX_BYTES) -> None:
    """Refuse input larger than ``max_bytes`` before reading or parsing it."""
    if size_bytes > max_bytes:
        raise ParameterError(f"{name} is not valid; it is {size_bytes:,} bytes, more than the "
                             f"{max_bytes:,} a config may have (is it the right file?)")


def expanded_nodes(value: Any, limit: int = MAX_NODES) -> int:
    """How many values ``value`` holds once shared (aliased) parts are counted each time they appear.

    Counted with a memo per object, so a billion-laughs value is measured in
    microseconds; a value that contains itself (``&a [*a]``) is refused.
    """
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(item: Any) -> int:
        if not isinstance(item, (list, dict)):
            return 1
        key = id(item)
        if key in memo:
            return memo[key]
        if key in active:
            raise ParameterError("the YAML value contains itself (a recursive alias); write it out")
        active.add(key)
        children = list(item.keys()) + list(item.values()) if isinstance(item, dict) else item
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        active.discard(key)
        memo[key] = total
        return total

    return size(value)


def load(text: str, name: str, max_bytes: int = MAX_BYTES) -> Any:
    """Parse ``text`` (named ``name`` in messages): duplicate keys, oversized text and alias bombs refused.

    ``Any``: YAML gives whatever the text holds (a mapping, a list, a scalar);
    each caller checks the shape it needs.
    """
    import yaml

    check_size(name, len(text.encode("utf-8", errors="replace")), max_bytes)
    try:
        data = yaml.load(text, Loader=_strict_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = " ".join(str(exc).split())
        raise ParameterError(f"{name} is not valid YAML: {where[:500]}") from None
    if expanded_nodes(data) > MAX_NODES:
        raise ParameterError(f"{name} is not valid; its aliases expand to more than {MAX_NODES:,} values "
                             "(an alias bomb?); a config is a few hundred")
    return data

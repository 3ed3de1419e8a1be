"""The one cattrs converter that turns Exotel's JSON into attrs records."""

from __future__ import annotations

import keyword
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from types import MemberDescriptorType
from typing import Any, Optional

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from ._models import Campaign

#: Exotel's timestamps carry +05:30; one without an offset is read as India time too.
IST = timezone(timedelta(hours=5, minutes=30), "IST")

#: The field of a record class that keeps every key the class does not know.
EXTRA = "extra"
#: Field metadata: other keys Exotel sends the same value under (``body`` for ``message``).
ALIASES = "aliases"
#: How deep an unknown field may nest. Exotel's records are flat; a deeper value could not
#: be written back out (orjson stops at 255 levels, the standard encoder at the recursion
#: limit), so it would stop an export at the same record on every resume.
MAX_NESTING = 64

StructureHook = Callable[[Any, type], Any]
Fields = tuple["attrs.Attribute[Any]", ...]
_OPTIONAL_STR: Any = Optional[str]  # noqa: UP045
_OPTIONAL_DATETIME: Any = Optional[datetime]  # noqa: UP045
_OPTIONAL_INT: Any = Optional[int]  # noqa: UP045
_DATETIMES = (datetime, _OPTIONAL_DATETIME)


def parse_datetime(value: Any) -> datetime:
    """Parse an ISO-8601 or ``YYYY-MM-DD HH:MM:SS`` timestamp into an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=IST)
    if isinstance(value, str):
        return _parse_timestamp(value)
    raise TypeError(f"expected a timestamp string, got {type(value).__name__}")


#: Timestamps parsed so far: a campaign's SMS are scheduled in batches that share one.
_TIMESTAMPS: dict[str, datetime] = {}
_MAX_TIMESTAMPS = 4096


def _parse_timestamp(text: str) -> datetime:
    """``text`` parsed, from the cache when it was seen before.

    A plain dict, emptied when full, rather than ``lru_cache``: a hit, what nearly every
    record's two timestamps are, is one ``dict.get`` in the record hook.
    """
    parsed = _TIMESTAMPS.get(text)
    if parsed is None:
        if len(_TIMESTAMPS) >= _MAX_TIMESTAMPS:
            _TIMESTAMPS.clear()
        parsed = _TIMESTAMPS[text] = _parse_timestamp_text(text)
    return parsed


def _parse_timestamp_text(text: str) -> datetime:
    text = text.strip()
    # Python 3.10's fromisoformat rejects a trailing "Z".
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=IST)


def _structure_str(value: Any, _: type) -> str:
    # Numbers arrive as JSON numbers on some accounts; a dict or list is never a string.
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_optional_str(value: Any, _: type) -> str | None:
    return value if value is None or type(value) is str else _structure_str(value, str)


def _structure_optional_int(value: Any, _: type) -> int | None:
    # cattrs' int() would take 1.5 as 1 and true as 1; a count is a whole number or its digits.
    if value is None or (type(value) is int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise TypeError(f"expected a whole number, got {type(value).__name__} {value!r:.40}")


def _structure_optional_datetime(value: Any, _: type) -> datetime | None:
    return None if value is None else parse_datetime(value)


def is_record_class(cls: Any) -> bool:
    """An attrs class with an ``extra`` field: unknown keys of its JSON are kept there."""
    return attrs.has(cls) and any(a.name == EXTRA for a in attrs.fields(cls))


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists or objects more than ``limit`` levels, without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


class _Splitter:
    """Sorts a record's keys into those its fields read and the unknown ones, for ``extra``."""

    def __init__(self, fields: Fields) -> None:
        self._names = frozenset(a.name for a in fields)
        self._aliased = tuple(
            (a.name, a.metadata[ALIASES]) for a in fields if a.metadata.get(ALIASES)
        )

    def _aliases_in_use(self, data: dict[str, Any]) -> Iterator[tuple[str, str]]:
        """(field, alias) for each field read from an alias: its own key is absent."""
        for name, aliases in self._aliased:
            if name not in data:
                alias = next((k for k in aliases if k in data), None)
                if alias is not None:
                    yield name, alias

    def unknown(self, data: dict[str, Any]) -> dict[str, Any]:
        """The keys no field reads, in a fresh dict; refuse one nested past ``MAX_NESTING``.

        Only records with unknown keys come here, so the nesting bound costs the others
        nothing.
        """
        extra = {k: v for k, v in data.items() if k not in self._names}
        for _, alias in self._aliases_in_use(data):
            del extra[alias]
        for name, value in extra.items():
            if _nests_deeper(value, MAX_NESTING):
                raise ValueError(f"unknown field {name!r} nests deeper than {MAX_NESTING} levels")
        return extra

    def known(self, data: dict[str, Any]) -> dict[str, Any]:
        """The keys fields read, aliases renamed to their fields, and ``extra``."""
        known = {k: v for k, v in data.items() if k in self._names}
        known.update((name, data[alias]) for name, alias in self._aliases_in_use(data))
        known[EXTRA] = self.unknown(data)
        return known


def _field_code(i: int, a: attrs.Attribute[Any]) -> list[str]:
    """Lines that read field ``a`` of ``d`` into ``f{i}``, or hand the record to ``slow``."""
    lines = [f"v = g({a.name!r}, M)"]
    for alias in a.metadata.get(ALIASES, ()):
        lines += ["if v is M:", f"    v = g({alias!r}, M)"]
    lines.append("if v is M:")
    if a.default is attrs.NOTHING or getattr(a.default, "takes_self", False):
        lines.append("    return slow(d, t)")
    else:
        call = "()" if isinstance(a.default, attrs.Factory) else ""  # type: ignore[arg-type]
        lines += [f"    f{i} = D{i}{call}", "    miss += 1"]
    # Exact types pass as they are; anything else goes to the detailed path, whose hooks
    # convert it (a number as text) or raise naming the field.
    if a.type is str:
        lines += ["elif type(v) is str:", f"    f{i} = v"]
    elif a.type == _OPTIONAL_STR:
        lines += ["elif v is None or type(v) is str:", f"    f{i} = v"]
    elif a.type in _DATETIMES:
        if a.type != datetime:
            lines += ["elif v is None:", f"    f{i} = None"]
        # A datetime is never false: a miss in the cache falls through to the parser.
        lines += ["elif type(v) is str:", f"    f{i} = parsed(v) or parse(v)"]
    else:
        return [*lines, "else:", f"    f{i} = H{i}(v, T{i})"]
    return [*lines, "else:", "    return slow(d, t)"]


def _build_code(cls: type, every: Fields, values: list[str], names: dict[str, Any]) -> list[str]:
    """Lines that build the record from ``values``, one per field of ``every``."""
    builder = _builder(cls, every)
    if builder is None:
        arguments = ", ".join(f"{a.alias}={v}" for a, v in zip(every, values, strict=True))
        return [f"return cls({arguments})"]
    # The frozen __init__ sets each slot through object.__setattr__, a call each. The
    # builder's own attribute stores reach the same slots without a call, and taking the
    # class back makes the object the frozen record itself: a third of the time.
    names["Builder"] = builder
    lines = ["o = new(Builder)"]
    lines += [f"o.{a.name} = {value}" for a, value in zip(every, values, strict=True)]
    return [*lines, "o.__class__ = cls", "return o"]


def _builder(cls: type, every: Fields) -> type | None:
    """A subclass of ``cls`` whose instances take attribute stores, or None if unsafe.

    Only for a slotted class that attrs' ``__init__`` would fill with nothing but the
    values: no validators, converters or init hooks, a plain metaclass and no
    ``__init_subclass__`` (making the builder must run no code of the caller's).
    """
    plain = not any(a.validator or a.converter for a in every) and not any(
        hasattr(cls, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__")
    )
    slotted = all(isinstance(getattr(cls, a.name, None), MemberDescriptorType) for a in every)
    named = all(a.name.isidentifier() and not keyword.iskeyword(a.name) for a in every)
    hooked = any("__init_subclass__" in vars(k) for k in cls.__mro__[:-1])
    if not (plain and slotted and named) or hooked or type(cls) is not type:
        return None
    # No slots of its own, so it shares the record's layout and __class__ can be set back;
    # object's __delattr__ too, or Python would route every store through __setattr__.
    namespace = {
        "__slots__": (),
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
    }
    return type(f"_{cls.__name__}Builder", (cls,), namespace)


def make_record_hook(cls: type, converter: cattrs.Converter) -> StructureHook:
    """A structure hook for a record class: unknown keys go into its ``extra`` field.

    The hot path is generated from ``attrs.fields``: exact ``str`` values are taken as they
    are, timestamps go straight to the parse cache, and a slotted class without validators
    gets its slots filled directly rather than through the frozen ``__init__``. Anything
    unexpected goes to cattrs' detailed function, which converts what the hooks accept and
    otherwise raises naming the field.
    """
    attrs.resolve_types(cls)
    every = attrs.fields(cls)
    fields = tuple(a for a in every if a.name != EXTRA)
    detailed: StructureHook = make_dict_structure_fn(
        cls, converter, _cattrs_detailed_validation=True
    )

    splitter = _Splitter(fields)

    def slow(data: Any, _: type) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, got {type(data).__name__}")
        return detailed(splitter.known(data), cls)

    names: dict[str, Any] = {
        "M": object(),
        "slow": slow,
        "parse": _parse_timestamp,
        "parsed": _TIMESTAMPS.get,
        "unknown": splitter.unknown,
        "new": object.__new__,
        "cls": cls,
    }
    body = ["g = d.get", "miss = 0", "try:"]
    for i, a in enumerate(fields):
        names[f"D{i}"] = getattr(a.default, "factory", a.default)
        names[f"H{i}"] = converter.get_structure_hook(a.type)
        names[f"T{i}"] = a.type
        body += ["    " + line for line in _field_code(i, a)]
    # A timestamp the cache cannot parse, or a value another hook refuses.
    body += ["except Exception:", "    return slow(d, t)"]
    # Every key was a field or an alias in use: nothing is unknown, so no dict to split.
    body.append(f"extra = {{}} if len(d) + miss == {len(fields)} else unknown(d)")
    values = ["extra" if a.name == EXTRA else f"f{fields.index(a)}" for a in every]
    body += _build_code(cls, every, values, names)
    head = ["def structure(d, t):", "    if type(d) is not dict:", "        return slow(d, t)"]
    source = "\n".join(head + ["    " + line for line in body])
    exec(compile(source, f"<record hook for {cls.__qualname__}>", "exec"), names)
    hook: StructureHook = names["structure"]
    return hook


def timestamp_fields(cls: type) -> tuple[str, ...]:
    """The names of a record class's ``datetime`` fields, optional or not."""
    attrs.resolve_types(cls)
    return tuple(a.name for a in attrs.fields(cls) if a.type in _DATETIMES)


def make_record_unstructure(cls: type) -> Callable[[Any], dict[str, Any]]:
    """An unstructure hook for a record class: its fields, timestamps as ISO text, then
    ``extra``'s keys, so that a record written out reads back the same."""
    stamps = timestamp_fields(cls)
    fields = tuple(a.name for a in attrs.fields(cls) if a.name != EXTRA)

    def unstructure(record: Any) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(record, name) for name in fields}
        for key in stamps:
            if out[key] is not None:
                out[key] = out[key].isoformat()
        out.update(getattr(record, EXTRA))
        return out

    return unstructure


def lift(key: str, hook: StructureHook) -> StructureHook:
    """Wrap a record hook so that the members of object ``key`` read as top-level keys.

    Exotel sends a campaign's counters flat or inside ``stats``: both fill the same fields.
    A top-level key wins over the same key inside ``key``.
    """

    def structure(data: Any, cls: type) -> Any:
        if type(data) is dict and key in data:
            nested = data[key]
            if not isinstance(nested, dict):
                raise TypeError(f"{key}: expected an object, got {type(nested).__name__}")
            data = {**nested, **{k: v for k, v in data.items() if k != key}}
        return hook(data, cls)

    return structure


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook(datetime, lambda value, _: parse_datetime(value))
    converter.register_structure_hook(str, _structure_str)
    # Direct hooks for the optional fields spare cattrs' generic Optional dispatch, which
    # cost more than the JSON decoding itself.
    converter.register_structure_hook(_OPTIONAL_STR, _structure_optional_str)
    converter.register_structure_hook(_OPTIONAL_DATETIME, _structure_optional_datetime)
    converter.register_structure_hook(_OPTIONAL_INT, _structure_optional_int)
    converter.register_structure_hook_factory(
        is_record_class, lambda cls: make_record_hook(cls, converter)
    )
    converter.register_unstructure_hook_factory(is_record_class, make_record_unstructure)
    converter.register_structure_hook(
        Campaign, lift("stats", make_record_hook(Campaign, converter))
    )
    return converter


#: The converter every module uses: structure Exotel JSON into records and back.
converter = _make_converter()

"""Typed reading of the JSON records probe keeps on disk: one place that checks types and ranges.

Every record's ``from_dict`` reads its fields through :class:`FieldReader`, so a wrong value is a ``ValueError`` that
names the file, the field, what was found and what was expected, and unknown keys are warned about, not fatal.
Hand checks rather than a schema library: the records are few and flat, and the messages must be one line
that says what to do, which a library's own errors would have to be translated into anyway.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from probe.core.io import to_jsonable
from probe.core.results import Result

MAX_RECORD_BYTES = 64 * 2**20
"""No record probe writes comes near this; a larger file is refused before it is parsed."""

_MISSING: Any = object()


def read_json(path: str | os.PathLike[str], *, what: str, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """Parse a JSON file, refusing one that is too large, not UTF-8, not JSON or nested beyond reason.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file and what is wrong with it.
    """
    path = Path(path)
    with open(path, "rb") as f:
        blob = f.read(max_bytes + 1)
    if len(blob) > max_bytes:
        raise ValueError(f"{what} '{path}' is over {max_bytes // 2**20} MB; it is not a file probe wrote")
    return parse_json(blob, source=str(path), what=what)


def parse_json(blob: bytes | str, *, source: str, what: str) -> Any:
    """:func:`read_json` for bytes already read."""
    try:
        text = blob.decode("utf-8-sig") if isinstance(blob, bytes) else blob
        return json.loads(text)
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} '{source}' is not valid JSON: not UTF-8 text (byte {e.start}); it is corrupt") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} '{source}' is not valid JSON ({e}); it is corrupt") from e
    except RecursionError as e:
        raise ValueError(f"{what} '{source}' is nested too deeply to be a record probe wrote") from e


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class FieldReader:
    """The fields of one JSON object, read with their types checked.

    Args:
        data: the parsed JSON.
        source: the file (or other origin) named in errors.
        what: what the record is ("run manifest", "hard prompt", ...).

    Raises:
        ValueError: ``data`` is not a JSON object.
    """

    def __init__(self, data: Any, source: str, what: str) -> None:
        if not isinstance(data, dict):
            raise ValueError(f"{what} '{source}' holds a {type(data).__name__}; expected an object")
        self.data, self.source, self.what = data, source, what

    def error(self, name: str, value: Any, expected: str) -> ValueError:
        """The one-line error for a field."""
        return ValueError(f"{self.what} '{self.source}': {name} is {_shown(value)}; expected {expected}")

    def _get(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise ValueError(f"{self.what} '{self.source}' lacks '{name}'; it was not written by probe")
        return default

    def text(self, name: str, default: Any = _MISSING, *, optional: bool = False) -> Any:
        """A text field (None allowed when ``optional``)."""
        value = self._get(name, default)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.error(name, value, "text" + (" or null" if optional else ""))
        return value

    def integer(self, name: str, default: Any = _MISSING, *, optional: bool = False, minimum: int | None = None) -> Any:
        """An integer field (never a bool or a float), at least ``minimum``."""
        value = self._get(name, default)
        if value is None and optional:
            return None
        bound = f" of at least {minimum}" if minimum is not None else ""
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise self.error(name, value, f"an integer{bound}" + (" or null" if optional else ""))
        return value

    def number(self, name: str, default: Any = _MISSING, *, optional: bool = False) -> Any:
        """A finite number, integers read as floats; a null is None when ``optional``, else NaN (the module's
        rule)."""
        if name not in self.data and default is not _MISSING:
            return default  # what an older file lacked: NaN, or None
        value = self._get(name, default)
        if value is None:
            return None if optional else math.nan
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(name, value, "a finite number or null")
        return float(value)

    def interval(self, name: str, default: Any = _MISSING) -> tuple[float, float]:
        """An interval ``[low, high]``; a null bound, or a null interval, is NaN."""
        value = self._get(name, default)
        value = [None, None] if value is None else value
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise self.error(name, value, "an interval [low, high]")
        out = []
        for bound in value:
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
                raise self.error(name, value, "an interval [low, high] of numbers")
            out.append(math.nan if bound is None else float(bound))
        return out[0], out[1]

    def flag(self, name: str, default: Any = _MISSING) -> Any:
        """A true / false field."""
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, value, "true or false")
        return value

    def texts(self, name: str, default: Any = _MISSING) -> list[str]:
        """A list of text."""
        value = self._get(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, value, "a list of text")
        return list(value)

    def mapping(self, name: str, default: Any = _MISSING, *, optional: bool = False) -> Any:
        """A JSON object field (None allowed when ``optional``)."""
        value = self._get(name, default)
        if value is None and optional:
            return None
        if not isinstance(value, dict):
            raise self.error(name, value, "a JSON object" + (" or null" if optional else ""))
        return value

    def array(self, name: str, default: Any = _MISSING) -> list[Any]:
        """A list field (a JSON array; its items are checked by the caller)."""
        value = self._get(name, default)
        if not isinstance(value, list):
            raise self.error(name, value, "a list")
        return value

    def records(self, name: str, required: Iterable[str], *, numbers: Iterable[str] = ()) -> list[dict[str, Any]]:
        """A list field of objects, each holding every key of ``required`` (other keys are the caller's); the keys of
        ``numbers`` (a number, or an interval) have their nulls read as NaN (the module's rule)."""
        items = self.array(name)
        numbers = tuple(numbers)
        out = []
        for i, item in enumerate(items):
            missing = [k for k in required if not isinstance(item, dict) or k not in item]
            if missing:
                raise self.error(f"{name}[{i}]", item, f"an object with {', '.join(missing)}")
            out.append({k: _nan_from_null(v) if k in numbers else v for k, v in item.items()})
        return out

    def fields_of(
        self, cls: type, *, defaults: dict[str, Any] | None = None, read: Iterable[str] = (), **given: Any
    ) -> dict[str, Any]:
        """The fields of the record dataclass ``cls``, each read by its type (values in ``given`` are taken as they
        are), for ``cls(**...)``; keys that are neither a field nor in ``read`` (keys the caller reads itself: older
        names, other shapes) are warned about. A field without a default (the dataclass's, else one in
        ``defaults``: what older files lacked) is required.

        Types: ``str``, ``int`` (at least ``metadata["minimum"]``, default 0), ``float`` (null: NaN), ``bool``,
        ``tuple[float, float]`` (an interval), ``list[str]``, ``dict``, a record class with ``from_dict``, and a
        list of them; each may be ``| None`` (optional: null is None).
        """
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = dict(given)
        for f in dataclasses.fields(cls):
            if f.name in given or not f.init:
                continue
            default: Any = (defaults or {}).get(f.name, _MISSING)
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            if f.name not in self.data and default is not _MISSING:
                values[f.name] = default  # what an older file lacked
                continue
            values[f.name] = self._typed(f.name, hints[f.name], default, f.metadata)
        self.unknown({f.name for f in dataclasses.fields(cls)} | set(given) | set(read) | {"format"})
        return values

    def _typed(self, name: str, hint: Any, default: Any, meta: Any) -> Any:
        """One field read by its type (see :meth:`fields_of`)."""
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) == 1 and type(None) in typing.get_args(hint)
        hint = args[0] if optional else hint
        origin = typing.get_origin(hint)
        if hint is str:
            return self.text(name, default, optional=optional)
        if hint is int:
            return self.integer(name, default, optional=optional, minimum=meta.get("minimum", 0))
        if hint is float:
            return self.number(name, default, optional=optional)
        if hint is bool:
            return self.flag(name, default)
        if origin is tuple:
            return self.interval(name, default)
        if origin is dict or hint is dict:
            return self.mapping(name, default, optional=optional)
        if origin is list and typing.get_args(hint) == (str,):
            return self.texts(name, default)
        if origin is list and "required" in meta:  # a list of objects: see :func:`objects`
            if name not in self.data and default is not _MISSING:
                return default
            return self.records(name, meta["required"], numbers=meta.get("numbers", ()))
        record = typing.get_args(hint)[0] if origin is list else hint
        if hasattr(record, "from_dict"):
            if optional and self.data.get(name) is None:
                return None
            if origin is list:
                return [record.from_dict(x, self.source) for x in self.array(name, default)]
            value = self._get(name, default)
            return value if value is default else record.from_dict(self.mapping(name), self.source)
        if origin is list:
            return self.array(name, default)
        raise TypeError(f"{name}: no reader for type {hint!r}")

    def unknown(self, known: Iterable[str], *, warn: bool = True) -> dict[str, Any]:
        """The keys this probe does not know, warned about (a newer probe may have written them)."""
        extra = {k: v for k, v in self.data.items() if k not in set(known)}
        if extra and warn:
            warnings.warn(
                f"{self.what} '{self.source}' has keys this probe does not know: {sorted(extra)[:8]}; kept as they are",
                UserWarning,
                stacklevel=3,
            )
        return extra


def objects(required: Iterable[str], numbers: Iterable[str] = ()) -> dict[str, Any]:
    """The metadata of a record's field that is a list of objects (``list[dict[str, Any]]``), each holding every key
    of ``required``, the nulls of ``numbers`` read as NaN (:meth:`FieldReader.records`): ``runs: list[dict[str,
    Any]] = field(metadata=objects(REQUIRED, NUMBERS))``."""
    return {"required": tuple(required), "numbers": tuple(numbers)}


RecordT = typing.TypeVar("RecordT", bound="Record")


class Record(Result):
    """A record on disk whose fields say how it is read (:meth:`FieldReader.fields_of`): a ``@dataclass`` subclass
    names what it is (``what``, for errors) and gets ``to_dict`` (every field), ``from_dict`` and :meth:`read`."""

    what: typing.ClassVar[str] = "record"
    lacked: typing.ClassVar[dict[str, Any]] = {}
    """What older files lacked, for fields without a default (read as these when absent)."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[RecordT], data: Any, *, source: str | None = None) -> RecordT:
        """The record in ``data`` (a file's parsed JSON).

        Raises:
            ValueError: naming the field that is missing or of the wrong type.
        """
        return cls(**FieldReader(data, source or f"<{cls.what}>", cls.what).fields_of(cls, defaults=cls.lacked))

    @classmethod
    def read(cls: type[RecordT], path: str | os.PathLike[str]) -> RecordT:
        """The record in the JSON file ``path``."""
        return cls.from_dict(read_json(path, what=cls.what), source=str(path))


def _nan_from_null(value: Any) -> Any:
    """A number or an interval read from JSON, its nulls NaN again (the module's rule)."""
    if value is None:
        return math.nan
    if isinstance(value, list) and len(value) == 2:
        return [math.nan if v is None else v for v in value]
    return value


def token_ids(
    fields: FieldReader, name: str, *, vocab_size: int | None = None, max_count: int | None = None
) -> list[int]:
    """A non-empty list of token ids: integers (not floats, text or bools), in the vocabulary's range."""
    value = fields.array(name)
    if not value:
        raise fields.error(name, value, "a non-empty list of token ids")
    if max_count is not None and len(value) > max_count:
        raise fields.error(name, f"{len(value)} ids", f"at most {max_count} positions")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (vocab_size is not None and v >= vocab_size):
            limit = f" below {vocab_size}" if vocab_size is not None else ""
            raise fields.error(name, v, f"token ids: integers from 0{limit}")
    return list(value)


def __getattr__(name: str) -> Any:
    if name == "Fields":  # its old name
        from probe.core.deprecation import renamed

        return renamed("probe.formats.schema.Fields", "probe.formats.schema.FieldReader")
    raise AttributeError(f"module 'probe.formats.schema' has no attribute {name!r}")

"""Checks for every value that enters a job's row, so a bad one is refused at the
call that passed it, with a message naming it, instead of failing at the database.

The rules are what both supported databases store faithfully: no NUL characters
(PostgreSQL refuses them in text and jsonb) and no surrogate code points (not
encodable as UTF-8) in any text, JSON integers within the signed 64-bit range,
finite floats only, and JSON nested at most ``MAX_JSON_DEPTH`` levels deep.

This module imports nothing from the app, so every layer may use it.
"""

from __future__ import annotations

import math
import numbers
import re
import reprlib
from typing import Any

MAX_BIGINT = 2**63 - 1
MIN_BIGINT = -(2**63)
# Python's own json module and SQLite's JSON functions both give up near 1000
# levels; this leaves room for the caller's stack when the row is read back.
MAX_JSON_DEPTH = 100
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_LEAVE = object()


class _Shown(reprlib.Repr):
    """A short repr that never fails: huge, deep or cyclic values are cut."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother = 3, 80, 80
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = 6

    def repr_int(self, x: int, level: int) -> str:
        try:
            text = repr(x)
        except ValueError:  # beyond sys.get_int_max_str_digits()
            return f"an integer of about {int(x.bit_length() * 0.30103) + 1} digits"
        if len(text) <= 40:
            return text
        return f"{text[:12]}...{text[-4:]} ({len(text.lstrip('-'))} digits)"


_shown = _Shown().repr


def shown(value: Any) -> str:
    """``repr(value)``, cut short enough for an error message."""
    try:
        return _shown(value)
    except Exception:
        return f"<{type(value).__name__} object>"


def _text_problem(name: str, value: str) -> str | None:
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    at = found.start()
    excerpt = value if len(value) <= 80 else value[max(at - 30, 0) : at + 30]
    if found.group() == "\x00":
        what = "a NUL character, which the database cannot store"
    else:
        what = f"a lone surrogate {found.group()!r}, which UTF-8 cannot encode"
    cut = "" if excerpt is value else " (excerpt)"
    return f"{name} contains {what} (at position {at}): {shown(excerpt)}{cut}"


def storable_text(value: str) -> str:
    """``value`` with NUL characters and surrogates replaced by U+FFFD.

    For text that comes from exceptions (errors, tracebacks): it must be stored
    even when it holds what the database refuses.
    """
    return _UNSTORABLE.sub("\ufffd", value)


def validate_text(name: str, value: Any) -> str:
    """``value`` if it is a string the database can store, else an error naming it."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {shown(value)}")
    problem = _text_problem(name, value)
    if problem:
        raise ValueError(problem)
    return value


def validate_fraction(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1], or an error naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number between 0 and 1, got {shown(value)}")
    try:
        fraction = float(value)
    except OverflowError:  # 10**400: too large for a float, so surely not in [0, 1]
        fraction = math.nan
    if math.isnan(fraction) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {shown(value)}")
    return fraction


def validate_count(name: str, value: Any) -> int:
    """``value`` as a non-negative int that fits a BigIntegerField, or an error naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {shown(value)}")
    value = int(value)
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {shown(value)}")
    if value > MAX_BIGINT:
        raise ValueError(f"{name} must be at most {MAX_BIGINT}, got {shown(value)}")
    return int(value)


def _where(name: str, path: Any) -> str:
    keys = []
    while path is not None:
        path, key = path
        keys.append(key)
    return name + "".join(f"[{shown(key)}]" for key in reversed(keys))


def _scalar_problem(where: str, item: Any) -> tuple[type[Exception], str] | None:
    """What is wrong with a JSON scalar (or dict key), or None if it is fine."""
    if isinstance(item, str):
        problem = _text_problem(where, item)
        return (ValueError, problem) if problem else None
    if item is None or isinstance(item, bool):
        return None
    if isinstance(item, int):
        if MIN_BIGINT <= item <= MAX_BIGINT:
            return None
        return ValueError, (
            f"{where} must be a 64-bit integer (from {MIN_BIGINT} to {MAX_BIGINT}), "
            f"got {shown(item)}"
        )
    if isinstance(item, float):
        if math.isfinite(item):
            return None
        return ValueError, f"{where} must be a finite number, got {shown(item)}"
    return TypeError, (
        f"{where} is not JSON-serialisable: {shown(item)} "
        f"({type(item).__name__} is not a JSON type)"
    )


def validate_json(name: str, value: Any) -> Any:
    """``value`` unchanged if both databases can store it as JSON, else an error
    that names it and where it is inside ``name`` (``field 'stats'['ratio']``).

    Walks the value without recursion, so a deeply nested or cyclic value gives
    an error, not a ``RecursionError``.
    """
    stack: list[tuple[Any, Any, int]] = [(value, None, 0)]
    inside: set[int] = set()  # containers on the current path, to find cycles
    while stack:
        item, path, depth = stack.pop()
        if item is _LEAVE:
            inside.discard(path)
            continue
        is_dict = isinstance(item, dict)
        if not is_dict and not isinstance(item, list | tuple):
            found = _scalar_problem(_where(name, path), item)
            if found:
                raise found[0](found[1])
            continue
        if depth >= MAX_JSON_DEPTH:
            raise ValueError(
                f"{name} is nested more than {MAX_JSON_DEPTH} levels deep: {shown(value)}"
            )
        if id(item) in inside:
            raise TypeError(
                f"{_where(name, path)} is not JSON-serialisable: it contains itself ({shown(item)})"
            )
        inside.add(id(item))
        stack.append((_LEAVE, id(item), depth))
        if is_dict:
            for key in item:
                if not isinstance(key, str | int | float | type(None)):
                    raise TypeError(
                        f"{_where(name, path)} has a key that is not JSON-serialisable: "
                        f"{shown(key)} (keys must be str, int, float, bool or None)"
                    )
                found = _scalar_problem(f"{_where(name, path)} key {shown(key)}", key)
                if found:
                    raise found[0](found[1])
            entries = list(item.items())
        else:
            entries = list(enumerate(item))
        stack.extend((child, (path, key), depth + 1) for key, child in reversed(entries))
    return value


def validate_owner(name: str, owner: Any) -> Any:
    """A saved user, or None for no owner (``None`` or ``AnonymousUser``).

    Anything else raises: ``owner="bob"`` must not quietly mean "no owner".
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser

    if owner is None or isinstance(owner, AnonymousUser):
        return None
    user_model = get_user_model()
    if not isinstance(owner, user_model):
        raise TypeError(
            f"{name} must be a {user_model.__name__}, None or AnonymousUser, got {shown(owner)}"
        )
    if owner.pk is None:
        raise ValueError(
            f"{name} must be a saved {user_model.__name__}, got unsaved {shown(owner)}"
        )
    return owner


def describe_error(error: BaseException | str) -> str:
    """``"Type: message"`` for an exception, made storable (see ``storable_text``)."""
    if isinstance(error, BaseException):
        return storable_text(f"{type(error).__name__}: {error}")
    return storable_text(str(error))

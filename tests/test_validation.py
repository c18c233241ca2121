"""The validators: each hostile value is refused with an error that names the value
and where it was, and ``storable_text`` makes exception text storable."""

import math
import re
from fractions import Fraction

import pytest

from django_jobprogress.validation import (
    MAX_JSON_DEPTH,
    describe_error,
    storable_text,
    validate_count,
    validate_fraction,
    validate_json,
    validate_owner,
    validate_text,
)

BIG = 2**63


def nested(depth, leaf=0):
    """A list ``depth`` levels deep around ``leaf``."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def raises(error, *parts):
    """``pytest.raises`` whose message must contain every one of ``parts``."""
    return pytest.raises(error, match="(?s)" + "".join(f"(?=.*{re.escape(p)})" for p in parts))


@pytest.mark.parametrize(
    ("value", "where", "shown"),
    [
        ("a\x00b", "field 'stats'", r"'a\x00b'"),
        ({"ok": ["x", "a\x00b"]}, "field 'stats'['ok'][1]", r"'a\x00b'"),
        ("\ud800", "field 'stats'", r"'\ud800'"),
        ({"name": "caf\udce9"}, "field 'stats'['name']", r"'caf\udce9'"),
        # A pair of surrogate code points is not a character in a str either.
        (["\ud83d\ude00"], "field 'stats'[0]", r"'\ud83d\ude00'"),
    ],
)
def test_json_text_with_nul_or_surrogates_is_refused(value, where, shown):
    with raises(ValueError, where, shown):
        validate_json("field 'stats'", value)


@pytest.mark.parametrize(
    ("value", "where", "shown"),
    [
        ({"a\x00b": 1}, "field 'stats' key", r"'a\x00b'"),
        ({"ok": {"\ud800": 1}}, "field 'stats'['ok'] key", r"'\ud800'"),
        ({math.nan: 1}, "field 'stats' key", "nan"),
        ({BIG: 1}, "field 'stats' key", str(BIG)),
    ],
)
def test_json_dict_keys_are_checked_too(value, where, shown):
    with raises(ValueError, where, shown):
        validate_json("field 'stats'", value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("wrap", "path"),
    [
        (lambda bad: bad, ""),
        (lambda bad: [1, 2, bad], "[2]"),
        (lambda bad: {"ratio": bad}, "['ratio']"),
        (lambda bad: {"a": [{"b": (0, bad)}]}, "['a'][0]['b'][1]"),
    ],
)
def test_json_non_finite_floats_are_refused_wherever_they_are(bad, wrap, path):
    with raises(ValueError, f"argument 1{path} must be a finite number", f"got {bad!r}"):
        validate_json("argument 1", wrap(bad))


@pytest.mark.parametrize("bad", [BIG, -BIG - 1, 10**30])
def test_json_integers_outside_64_bits_are_refused(bad):
    with raises(ValueError, "result['rows'][3]", "64-bit integer", f"got {bad}"):
        validate_json("result", {"rows": [0, 1, 2, bad]})


def test_json_integers_at_the_64_bit_limits_pass():
    value = {"min": -BIG, "max": BIG - 1, "flag": True, "none": None}
    assert validate_json("result", value) is value


def test_json_nested_deeper_than_the_limit_is_an_error_not_a_crash():
    with raises(ValueError, "argument 1", f"more than {MAX_JSON_DEPTH} levels", "[[["):
        validate_json("argument 1", nested(10_000))
    deep = {"a": nested(10_000)}
    with raises(ValueError, "field 'tree'", "levels deep"):
        validate_json("field 'tree'", deep)


def test_json_nested_to_the_limit_passes():
    validate_json("argument 1", nested(MAX_JSON_DEPTH))
    with pytest.raises(ValueError, match="levels deep"):
        validate_json("argument 1", nested(MAX_JSON_DEPTH + 1))


def test_json_that_contains_itself_is_refused():
    loop = {"a": []}
    loop["a"].append(loop)
    with raises(TypeError, "argument 'x'['a'][0]", "contains itself"):
        validate_json("argument 'x'", loop)
    # Shared (not cyclic) containers are fine.
    shared = [1]
    validate_json("argument 'x'", [shared, shared, {"s": shared}])


@pytest.mark.parametrize(
    ("value", "where", "shown"),
    [
        (object(), "argument 2", "<object object"),
        ({1, 2}, "argument 2", "{1, 2}"),
        ({"when": [b"bytes"]}, "argument 2['when'][0]", "b'bytes'"),
        ({(1, 2): "tuple key"}, "argument 2", "(1, 2)"),
    ],
)
def test_json_values_that_are_not_json_keep_the_old_type_error(value, where, shown):
    with raises(TypeError, where, "is not JSON-serialisable", shown):
        validate_json("argument 2", value)


def test_json_accepts_what_json_accepts_and_returns_it_unchanged():
    value = {"s": "café ☕ 😀", "n": [1, 2.5, -0.0], "t": (1, 2), 3: None, None: {}}
    assert validate_json("result", value) is value


def test_json_errors_do_not_copy_huge_values_into_the_message():
    with pytest.raises(ValueError) as caught:
        validate_json("argument 1", ["x" * 1_000_000, "\x00" + "y" * 1_000_000])
    assert "argument 1[1]" in str(caught.value)
    assert len(str(caught.value)) < 500


# -- validate_text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "shown"),
    [
        ("a\x00b", ValueError, r"'a\x00b'"),
        ("\ud800", ValueError, r"'\ud800'"),
        (42, TypeError, "42"),
        (None, TypeError, "None"),
        (b"bytes", TypeError, "b'bytes'"),
    ],
)
def test_text_refuses_non_strings_nul_and_surrogates(value, error, shown):
    with raises(error, "stage", shown):
        validate_text("stage", value)


def test_text_names_the_position_of_a_nul_in_a_long_string():
    with raises(ValueError, "message", "NUL", "position 5000"):
        validate_text("message", "x" * 5000 + "\x00" + "y" * 5000)


def test_text_passes_unicode():
    assert validate_text("stage", "zipping 😀 Ωμέγα") == "zipping 😀 Ωμέγα"


# -- validate_count / validate_fraction -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "shown"),
    [
        (BIG, ValueError, str(BIG)),
        pytest.param(10**400, ValueError, "401 digits", id="10**400"),
        (-1, ValueError, "-1"),
        (2.0, TypeError, "2.0"),
        (True, TypeError, "True"),
    ],
)
def test_count_refuses_what_a_bigint_column_cannot_hold(value, error, shown):
    with raises(error, "total", shown):
        validate_count("total", value)


def test_count_at_the_limit_passes():
    assert validate_count("total", BIG - 1) == BIG - 1


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(10**400, "1000000", id="10**400"),
        pytest.param(-(10**400), "-1000000", id="-10**400"),
        # More digits than Python will turn into text:
        pytest.param(10**5000, "5001 digits", id="10**5000"),
        pytest.param(Fraction(10**400, 3), "Fraction", id="Fraction(10**400, 3)"),
        (math.inf, "inf"),
    ],
)
def test_fraction_refuses_huge_numbers_naming_them(value, shown):
    with raises(ValueError, "fraction must be between 0 and 1", shown):
        validate_fraction("fraction", value)


# -- validate_owner ----------------------------------------------------------------------


def test_owner_may_be_none_or_anonymous():
    from django.contrib.auth.models import AnonymousUser
    from django.utils.functional import SimpleLazyObject

    assert validate_owner("owner", None) is None
    assert validate_owner("owner", AnonymousUser()) is None
    assert validate_owner("owner", SimpleLazyObject(AnonymousUser)) is None  # request.user


@pytest.mark.parametrize("owner", ["bob", 42, object()])
def test_owner_that_is_not_a_user_is_a_type_error(owner):
    with raises(TypeError, "owner must be a User", repr(owner)[:10]):
        validate_owner("owner", owner)


@pytest.mark.django_db
def test_owner_must_be_a_saved_user(make_user):
    from django.contrib.auth import get_user_model

    user = make_user(username="ann")
    assert validate_owner("owner", user) is user
    with raises(ValueError, "owner must be a saved User", "unsaved"):
        validate_owner("owner", get_user_model()(username="ghost"))


# -- storable_text / describe_error ---------------------------------------------------


def test_storable_text_keeps_normal_text():
    text = 'Traceback (most recent call last):\n  File "x.py"\nValueError: café 😀\t"ok"'
    assert storable_text(text) == text


def test_storable_text_replaces_nul_and_surrogates():
    assert storable_text("a\x00b\ud800c\udfff") == "a\ufffdb\ufffdc\ufffd"
    validate_text("error", storable_text("a\x00\ud83d\ude00"))


def test_describe_error_is_storable():
    assert describe_error(ValueError("bad\x00byte \udce9")) == "ValueError: bad\ufffdbyte \ufffd"
    assert describe_error("plain") == "plain"

"""CSV uploads that would be stored wrong or break the database are refused with a message
naming the problem."""

from __future__ import annotations

import pytest

from lifecycle.datasets import parse_csv
from lifecycle.errors import LifecycleError


def test_rows_wider_than_the_header_are_refused_not_stored_shifted():
    with pytest.raises(LifecycleError, match="more fields than the header's 2 columns"):
        parse_csv(b"a,b\n1,2,3\n4,5,6\n", field="training_data")


def test_a_nul_character_is_refused():
    with pytest.raises(LifecycleError, match="NUL"):
        parse_csv(b"age\x00,label\n1,0\n", field="training_data")


def test_a_very_wide_header_with_a_repeat_is_named_quickly(settings):
    settings.MAX_DATASET_COLUMNS = 100_000  # (the repeat check itself must be linear)
    names = [f"c{i}" for i in range(60_000)] + ["c7"]
    data = (",".join(names) + "\n" + ",".join("1" for _ in names) + "\n").encode()
    with pytest.raises(LifecycleError, match="repeats column"):
        parse_csv(data, field="training_data")


def test_a_well_formed_file_still_parses_with_its_columns_in_place():
    parsed = parse_csv(b"a,b\n1,x\n2,y\n", field="training_data")
    assert list(parsed.frame["a"]) == [1, 2] and list(parsed.frame["b"]) == ["x", "y"]


def test_a_file_wider_than_max_dataset_columns_is_refused_by_name(settings):
    names = [f"c{i}" for i in range(2_001)]
    data = (",".join(names) + "\n" + ",".join("1" for _ in names) + "\n").encode()
    with pytest.raises(LifecycleError, match="2001 columns; at most 2000") as refused:
        parse_csv(data, field="training_data")
    assert refused.value.code == "too_many_columns" and refused.value.field == "training_data"
    settings.MAX_DATASET_COLUMNS = 3
    with pytest.raises(LifecycleError, match="4 columns; at most 3"):
        parse_csv(b"a,b,c,d\n1,2,3,4\n", field="evaluation_data")
    assert parse_csv(b"a,b,c\n1,2,3\n", field="evaluation_data").column_names == ["a", "b", "c"]

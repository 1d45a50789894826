import numpy as np
import pandas as pd
import pytest

from explorer.errors import ExplorerError
from explorer.data.tasks import MAX_CLASSES, Task, coverage, encode_labels, has_label


def test_detects_binary_and_sorts_classes():
    task, y = encode_labels("t", pd.Series(["yes", "no", "yes"]))
    assert task.kind == "binary" and task.classes == ("no", "yes")
    assert y.tolist() == [1, 0, 1] and y.dtype == np.int64


def test_detects_multiclass_with_natural_number_order():
    task, y = encode_labels("t", pd.Series([10, 2, 1, 2]))
    assert task.kind == "multiclass" and task.classes == ("1", "2", "10")
    assert y.tolist() == [2, 1, 0, 1]


def test_numeric_with_many_values_is_regression():
    values = pd.Series(np.linspace(0, 1, 30))
    task, y = encode_labels("t", values)
    assert task.kind == "regression" and task.classes == () and task.n_outputs == 1
    assert y.dtype == np.float64 and np.allclose(y, values)


def test_few_numeric_values_are_classes_and_whole_floats_read_as_ints():
    task, y = encode_labels("t", pd.Series([1.0, 2.0, 3.0, 1.0]))
    assert task.classes == ("1", "2", "3") and y.tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize("values", [
    pd.Series(["a", None, "b", " "]),
    pd.Series(["a", None, "b", " "], dtype=object),
    pd.Series([1.0, np.nan, 2.0, np.nan]),
    pd.Series([1, None, 2, None], dtype="Int64"),
])
def test_missing_and_blank_labels_are_minus_one(values):
    task, y = encode_labels("t", values)
    assert len(task.classes) == 2 and "nan" not in task.classes
    assert y.tolist() == [0, -1, 1, -1]
    assert coverage(y) == 0.5 and has_label(y).tolist() == [True, False, True, False]


def test_regression_keeps_nan_as_missing():
    values = pd.Series([*np.arange(25.0), np.nan])
    task, y = encode_labels("t", values, kind="regression")
    assert np.isnan(y[-1]) and coverage(y) == pytest.approx(25 / 26)


def test_fixed_class_order():
    task, y = encode_labels("t", pd.Series(["mid", "low", "high"]), classes=["low", "mid", "high"])
    assert task.classes == ("low", "mid", "high") and y.tolist() == [1, 0, 2]


def test_kind_override_to_multiclass_and_regression():
    task, _ = encode_labels("t", pd.Series(np.arange(30) % 25), kind="multiclass")
    assert task.kind == "multiclass" and len(task.classes) == 25
    task, y = encode_labels("t", pd.Series(["1", "2", "3.5"]), kind="regression")
    assert task.kind == "regression" and y.tolist() == [1.0, 2.0, 3.5]


def test_bool_labels_are_classes():
    task, y = encode_labels("t", pd.Series([True, False, True]))
    assert task.kind == "binary" and task.classes == ("False", "True") and y.tolist() == [1, 0, 1]


def test_description_and_dict_round_trip():
    task, _ = encode_labels("t", pd.Series(["a", "b", "c"]), description="what it is")
    assert task.description == "what it is" and task.primary_metric == "macro_f1"
    assert Task.from_dict(task.to_dict()) == task


def test_only_missing_values():
    with pytest.raises(ExplorerError, match="The label column 't' is empty in every row"):
        encode_labels("t", pd.Series([None, " ", None], dtype=object))
    with pytest.raises(ExplorerError, match="The label column 't' is empty in every row"):
        encode_labels("t", pd.Series([np.nan, np.nan]))


def test_single_class():
    with pytest.raises(ExplorerError, match=r"only one class \('a'\)"):
        encode_labels("t", pd.Series(["a", "a", None]))


def test_too_many_classes():
    with pytest.raises(ExplorerError, match=f"{MAX_CLASSES + 1} classes; the limit is {MAX_CLASSES}"):
        encode_labels("t", pd.Series([f"id{i}" for i in range(MAX_CLASSES + 1)]))


def test_unknown_kind():
    with pytest.raises(ExplorerError, match="unknown kind 'ordinal'"):
        encode_labels("t", pd.Series(["a", "b"]), kind="ordinal")


def test_text_cannot_be_regression():
    with pytest.raises(ExplorerError, match="not numeric"):
        encode_labels("t", pd.Series(["a", "b", "c"]), kind="regression")


def test_constant_regression():
    with pytest.raises(ExplorerError, match="single value"):
        encode_labels("t", pd.Series([3.0, 3.0, np.nan]), kind="regression")


def test_binary_with_three_classes():
    with pytest.raises(ExplorerError, match="set to binary but has 3 classes"):
        encode_labels("t", pd.Series(["a", "b", "c"]), kind="binary")


def test_coverage_of_empty_labels():
    assert coverage(np.array([], dtype=np.int64)) == 0.0

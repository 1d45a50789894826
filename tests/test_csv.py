import hashlib
import io

import numpy as np
import pandas as pd
import pytest

from explorer.datasets import load_dataset
from explorer.datasets.csv import load_csv
from explorer.errors import ExplorerError

N = 30


def reviews_csv() -> bytes:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "review": [f"review number {i} says {'good' if i % 2 else 'bad'} things" for i in range(N)],
        "stars": (np.arange(N) % 5) + 1,
        "sentiment": np.where(np.arange(N) % 2, "positive", "negative"),
        "price": rng.normal(50, 10, N).round(2),
        "city": rng.choice(["Oslo", "Lima", "Pune"], N),
        "score": rng.normal(size=N),
    })
    df.loc[3, "sentiment"] = None
    df.loc[4, "city"] = None
    df.loc[5, "price"] = None
    return df.to_csv(index=False).encode()


def test_text_happy_path(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(reviews_csv())
    ds = load_csv(path, text_col="review", label_cols=["sentiment", "stars"], name="reviews")
    assert ds.name == "reviews" and ds.modality == "text" and len(ds) == N
    assert ds.inputs[1] == "review number 1 says good things"
    assert ds.tasks["sentiment"].kind == "binary" and ds.tasks["sentiment"].classes == ("negative", "positive")
    assert ds.labels["sentiment"][3] == -1 and ds.labels["sentiment"][1] == 1
    assert ds.tasks["stars"].kind == "multiclass" and ds.tasks["stars"].classes == ("1", "2", "3", "4", "5")
    assert ds.source == {"name": "csv", "sha256": hashlib.sha256(reviews_csv()).hexdigest(),
                         "text_col": "review", "feature_cols": None, "label_cols": ["sentiment", "stars"],
                         "kinds": {}}
    ds.split()  # enough rows to split


def test_tabular_happy_path_from_bytes_with_kind_override():
    ds = load_csv(data=reviews_csv(), feature_cols=["price", "city", "score"],
                  label_cols=["stars", "sentiment"], kinds={"stars": "regression"})
    assert ds.modality == "tabular" and ds.categorical == ["city"]
    assert list(ds.inputs.columns) == ["price", "city", "score"]
    assert ds.inputs["price"].dtype == float and np.isnan(ds.inputs["price"][5])
    assert ds.inputs["city"][4] == "missing"
    assert ds.tasks["stars"].kind == "regression" and ds.labels["stars"].dtype == float
    assert ds.source["feature_cols"] == ["price", "city", "score"] and ds.source["kinds"] == {"stars": "regression"}


def test_load_dataset_dispatches_to_csv(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(reviews_csv())
    ds = load_dataset("csv", path=str(path), text_col="review", label_cols=["sentiment"])
    assert ds.task_names == ["sentiment"]


def test_utf8_bom_is_accepted():
    ds = load_csv(data=b"\xef\xbb\xbf" + reviews_csv(), text_col="review", label_cols=["sentiment"])
    assert len(ds) == N


def test_empty_file():
    with pytest.raises(ExplorerError, match="CSV file is empty"):
        load_csv(data=b"", text_col="review", label_cols=["sentiment"])
    with pytest.raises(ExplorerError, match="CSV file is empty"):
        load_csv(data=b"\n  \n", text_col="review", label_cols=["sentiment"])


def test_header_without_rows():
    with pytest.raises(ExplorerError, match="header but no data rows"):
        load_csv(data=b"review,sentiment\n", text_col="review", label_cols=["sentiment"])


def test_too_few_rows():
    with pytest.raises(ExplorerError, match="only 2 data rows; at least 10"):
        load_csv(data=b"review,sentiment\ngood,pos\nbad,neg\n", text_col="review", label_cols=["sentiment"])


def test_not_utf8():
    data = reviews_csv().replace(b"review number 1 ", "révision ".encode("latin-1"))
    with pytest.raises(ExplorerError, match="not UTF-8 .*Save it as UTF-8"):
        load_csv(data=data, text_col="review", label_cols=["sentiment"])


def test_not_parseable():
    data = b"a,b\n1,2\n3,4,5,6\n" + b"1,2\n" * 20
    with pytest.raises(ExplorerError, match=r"Could not parse the file as CSV \(.*Expected 2 fields.*same number of fields"):
        load_csv(data=data, feature_cols=["a"], label_cols=["b"])


def test_too_big(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(reviews_csv())
    with pytest.raises(ExplorerError, match=r"file is 0\.0 MB; the limit is 0\.0 MB.*EXPLORER_MAX_CSV_MB"):
        load_csv(path, text_col="review", label_cols=["sentiment"], max_bytes=100)
    with pytest.raises(ExplorerError, match="EXPLORER_MAX_CSV_MB"):
        load_csv(data=reviews_csv(), text_col="review", label_cols=["sentiment"], max_bytes=100)


def test_size_limit_comes_from_the_environment(monkeypatch):
    data = b"x" * (2 * 1024 * 1024)
    monkeypatch.setenv("EXPLORER_MAX_CSV_MB", "1")
    with pytest.raises(ExplorerError, match=r"file is 2\.0 MB; the limit is 1\.0 MB"):
        load_csv(data=data, text_col="review", label_cols=["sentiment"])
    monkeypatch.setenv("EXPLORER_MAX_CSV_MB", "lots")
    with pytest.raises(ExplorerError, match="EXPLORER_MAX_CSV_MB='lots' is not a positive number"):
        load_csv(data=data, text_col="review", label_cols=["sentiment"])


def test_missing_file(tmp_path):
    with pytest.raises(ExplorerError, match="does not exist"):
        load_csv(tmp_path / "nope.csv", text_col="review", label_cols=["sentiment"])


def test_path_and_data_together():
    with pytest.raises(ExplorerError, match="not both or neither"):
        load_csv("x.csv", data=reviews_csv(), text_col="review", label_cols=["sentiment"])
    with pytest.raises(ExplorerError, match="not both or neither"):
        load_csv(text_col="review", label_cols=["sentiment"])


def test_missing_column():
    with pytest.raises(ExplorerError, match=r"Column 'rating' is not in the CSV file\. Available columns: "
                                            r"review, stars, sentiment, price, city, score"):
        load_csv(data=reviews_csv(), text_col="review", label_cols=["rating"])
    with pytest.raises(ExplorerError, match="Column 'text' is not in the CSV"):
        load_csv(data=reviews_csv(), text_col="text", label_cols=["sentiment"])
    with pytest.raises(ExplorerError, match="Column 'size' is not in the CSV"):
        load_csv(data=reviews_csv(), feature_cols=["price", "size"], label_cols=["sentiment"])


def test_both_text_and_features():
    with pytest.raises(ExplorerError, match="either a text column or feature columns .*not both"):
        load_csv(data=reviews_csv(), text_col="review", feature_cols=["price"], label_cols=["sentiment"])


def test_neither_text_nor_features():
    with pytest.raises(ExplorerError, match="Choose the input: a text column .* or feature columns"):
        load_csv(data=reviews_csv(), label_cols=["sentiment"])
    with pytest.raises(ExplorerError, match="Choose the input"):
        load_csv(data=reviews_csv(), feature_cols=[], label_cols=["sentiment"])


def test_label_with_one_class():
    data = reviews_csv().decode().replace("negative", "positive").encode()
    with pytest.raises(ExplorerError, match=r"'sentiment' has only one class \('positive'\)"):
        load_csv(data=data, text_col="review", label_cols=["sentiment"])


@pytest.mark.parametrize("fill", [None, "", "   "])
def test_label_with_only_missing_values(fill):
    """An all-empty label column beside a text column: the named checker's one sentence (column and fix)."""
    df = pd.read_csv(io.BytesIO(reviews_csv()))
    df["empty"] = fill
    with pytest.raises(ExplorerError) as info:
        load_csv(data=df.to_csv(index=False).encode(), text_col="review", label_cols=["sentiment", "empty"])
    assert str(info.value) == ("The label column 'empty' is empty in every row. Choose a column that holds "
                               "labels, or drop it from the label columns.")


def test_too_many_classes():
    rows = "\n".join(f"text {i},id{i}" for i in range(250))
    with pytest.raises(ExplorerError, match="'ident' has 250 classes; the limit is 200"):
        load_csv(data=f"review,ident\n{rows}\n".encode(), text_col="review", label_cols=["ident"])


def test_blank_text_column():
    rows = "\n".join(f" ,{'a' if i % 2 else 'b'}" for i in range(20))
    with pytest.raises(ExplorerError, match="^The text column 'review' is empty in every row. Choose the column "
                                            "that holds the text.$"):
        load_csv(data=f"review,label\n{rows}\n".encode(), text_col="review", label_cols=["label"])


def test_label_listed_twice():
    with pytest.raises(ExplorerError, match="Label column 'sentiment' is listed 2 times"):
        load_csv(data=reviews_csv(), text_col="review", label_cols=["sentiment", "stars", "sentiment"])


def test_label_that_is_also_an_input():
    with pytest.raises(ExplorerError, match="'price' is both a label column and a feature column"):
        load_csv(data=reviews_csv(), feature_cols=["price", "city"], label_cols=["price"])
    with pytest.raises(ExplorerError, match="'review' is both a label column and the text column"):
        load_csv(data=reviews_csv(), text_col="review", label_cols=["review"])


def test_no_label_columns():
    with pytest.raises(ExplorerError, match="No label columns chosen"):
        load_csv(data=reviews_csv(), text_col="review", label_cols=[])


def test_kind_for_a_column_that_is_not_a_label():
    with pytest.raises(ExplorerError, match="Kinds are given for 'price', which is not a label column"):
        load_csv(data=reviews_csv(), text_col="review", label_cols=["sentiment"], kinds={"price": "regression"})


def test_bad_kind():
    with pytest.raises(ExplorerError, match="unknown kind 'ordinal'"):
        load_csv(data=reviews_csv(), text_col="review", label_cols=["stars"], kinds={"stars": "ordinal"})


@pytest.mark.parametrize("role", ["feature", "text"])
def test_input_column_names_have_the_task_name_limit(role):
    """Feature and text column names: the same 200-character limit as task names (one sentence, the fix)."""
    long = "w" * 201
    frame = pd.DataFrame({long: [f"word {i}" if role == "text" else i for i in range(20)], "y": ["a", "b"] * 10})
    kwargs = dict(text_col=long) if role == "text" else dict(feature_cols=[long])
    with pytest.raises(ExplorerError, match=rf"^The {role} column name 'w{{40}}\.\.\.' has 201 characters; the "
                                            r"limit is 200\. Rename it in the CSV header\.$"):
        load_csv(data=frame.to_csv(index=False).encode(), label_cols=["y"], **kwargs)
    ok = frame.rename(columns={long: "w" * 200})
    kwargs = dict(text_col="w" * 200) if role == "text" else dict(feature_cols=["w" * 200])
    assert load_csv(data=ok.to_csv(index=False).encode(), label_cols=["y"], **kwargs).task_names == ["y"]

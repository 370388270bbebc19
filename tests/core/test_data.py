"""probe.core.data: bundled sets, CSV / TSV / JSONL, splits and bad input."""

from __future__ import annotations

import json

import pytest

from probe.core.data import load_labelled, train_test


def test_bundled__feelings_and_topics_have_fixed_splits():
    for name, labels in (
        ("feelings", ["joy", "anger", "fear", "sadness"]),
        ("topics", ["science", "sports", "business", "politics"]),
    ):
        splits = train_test(name)
        assert splits.train.label_names == labels
        assert len(splits.train) == 192 and len(splits.test) == 64
        assert not set(splits.train.texts) & set(splits.test.texts)
        for label in labels:
            assert splits.test.labels.count(label) == 16


def test_load_labelled__csv_tsv_jsonl_agree(tmp_path):
    rows = [("good day", "pos"), ("bad day", "neg"), ("fine, thanks", "pos"), ("awful", "neg")]
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    (tmp_path / "d.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    loaded = [load_labelled(tmp_path / f"d.{ext}") for ext in ("csv", "tsv", "jsonl")]
    assert all(d.texts == [t for t, _ in rows] for d in loaded)
    assert all(d.label_names == ["pos", "neg"] for d in loaded)


def test_load_labelled__custom_columns(tmp_path):
    (tmp_path / "d.csv").write_text("sentence,y\nhi,a\nho,b\n")
    data = load_labelled(tmp_path / "d.csv", text_column="sentence", label_column="y")
    assert data.targets == [0, 1]


def test_train_test__stratified_seeded_split(tmp_path):
    lines = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(40))
    (tmp_path / "d.csv").write_text("text,label\n" + lines)
    a, b = train_test(tmp_path / "d.csv", seed=1), train_test(tmp_path / "d.csv", seed=1)
    assert a.test.texts == b.test.texts and len(a.test) == 10
    assert a.test.labels.count("a") == 5


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (b"", ".csv", "has no rows"),
        (b"text,label\n", ".csv", "has no rows"),
        (b"sentence,y\nhi,a\n", ".csv", r"lacks column\(s\) \['text', 'label'\]"),
        (b"text,label\nhi,a\nho,a\n", ".csv", "single class"),
        (b"text,label\n\xff\xfe bad,a\n", ".csv", "not UTF-8"),
        (b"text,label\n,a\nho,b\n", ".csv", "empty 'text'"),
        (b'{"text": "a", "label": "x"}\nnot json\n', ".jsonl", "line 2 is not JSON"),
        (b"text,label\nhi,a\n", ".xlsx", "expected .csv, .tsv or .jsonl"),
    ],
)
def test_load_labelled__bad_files(tmp_path, content, suffix, message):
    path = tmp_path / f"d{suffix}"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_labelled(path)


def test_load_labelled__missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*feelings, topics"):
        load_labelled(tmp_path / "nope.csv")


def test_train_test__class_too_small(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\na,x\nb,x\nc,y\n")
    with pytest.raises(ValueError, match="class 'y' has 1 row"):
        train_test(tmp_path / "d.csv")


def test_frames__missing_cells_and_unlabelled_rows_are_refused_in_one_line():
    import datasets
    import pandas as pd

    from probe.core.frames import as_labelled

    texts = ["good film", "bad film", "fine film", "dull film"]
    with pytest.raises(ValueError, match="row 2 has an empty 'text'"):  # never the text "nan"
        as_labelled(pd.DataFrame({"text": ["good film", float("nan"), "fine", "dull"], "label": list("abab")}))
    with pytest.raises(ValueError, match="row 3 has an empty 'label'"):  # never the class "nan"
        as_labelled(pd.DataFrame({"text": texts, "label": ["a", "b", None, "b"]}))
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    rows = datasets.Dataset.from_dict({"text": texts, "label": [0, 1, -1, 1]}, features=features)
    with pytest.raises(ValueError, match=r"row 3 has label -1 \(no label\); expected a class from 0 to 1"):
        as_labelled(rows)  # never the last class
    good = as_labelled(rows.filter(lambda r: r["label"] >= 0))
    assert good.labels == ["neg", "pos", "pos"] and good.texts == ["good film", "bad film", "dull film"]


@pytest.mark.parametrize("values", [["train", "validation"], ["Train", "Test"]])
def test_split_column__without_train_and_test_rows_is_refused_in_one_line(tmp_path, values):
    """A split column was ignored unless it held both 'train' and 'test': its held-out rows were split again at
    random, some trained on (errors.md 196). A DataFrame and a file read alike."""
    import pandas as pd

    from probe.core.frames import as_splits

    rows = [{"text": f"text {i}", "label": "ab"[i % 2], "split": values[i // 4]} for i in range(8)]
    (tmp_path / "data.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    for data in (pd.DataFrame(rows), tmp_path / "data.csv"):
        with pytest.raises(ValueError, match=r"has a split column with the values \[.*\]; expected rows marked 'tr"):
            as_splits(data)
    marked = [{**r, "split": ["train", "test"][i // 4]} for i, r in enumerate(rows)]
    splits = as_splits(pd.DataFrame(marked))
    assert splits.test.texts == [f"text {i}" for i in range(4, 8)]

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


def test_split_column__its_values_are_read_as_meant_and_a_set_without_train_and_test_is_refused(tmp_path):
    """A split column was ignored unless it held both 'train' and 'test' exactly: its held-out rows were split again
    at random, some trained on; 'Train' and 'test ' rows, and rows without a value, were left out without a word
    (errors.md 196). A DataFrame and a file read alike."""
    import pandas as pd

    from probe.core.frames import as_splits

    def rows(values: list[str]) -> list[dict[str, str]]:
        return [{"text": f"text {i}", "label": "ab"[i % 2], "split": values[i // 4]} for i in range(8)]

    (tmp_path / "data.csv").write_text(pd.DataFrame(rows(["train", "validation"])).to_csv(index=False))
    for data in (pd.DataFrame(rows(["train", "validation"])), tmp_path / "data.csv"):
        with pytest.raises(ValueError, match=r"has a split column with the values \[.*\]; expected rows marked 'tr"):
            as_splits(data)
    splits = as_splits(pd.DataFrame(rows(["Train ", " TEST"])))
    assert splits.test.texts == [f"text {i}" for i in range(4, 8)] and len(splits.train) == 4
    blank = rows(["train", "test"])
    blank[5]["split"] = " "
    with pytest.raises(ValueError, match="row 6 has no 'split' value; mark every row train or test"):
        as_splits(pd.DataFrame(blank))


def test_files__a_layout_read_wrong_is_one_line_and_json_lines_are_read_as_written(tmp_path, caplog):
    """Each was read silently wrong (a text cut at its first comma, a split key the first object lacked ignored,
    1 and 1.0 two classes, an object's repr as a text, duplicate rows across the split) or failed unclearly (a gzip
    file as 'not UTF-8', a TSV named .csv as missing columns, a folder as missing, CR-only lines): errors.md 206."""
    import gzip
    import logging

    rows = "".join(f"{label},text number {i} here\n" for i, label in enumerate(["joy", "anger"] * 3))
    cases = {
        "cut.csv": ("label,text\n" + rows + "joy,a text, with commas, unquoted\n", r"line 8 has 4 fields; its header"),
        "tabs.csv": ("text\tlabel\n" + rows.replace(",", "\t") + "a text, with a comma\tjoy\n", r"looks tab-separated"),
        "nested.jsonl": ('{"text": {"body": "hi"}, "label": "joy"}\n', r"row 1 has a dict in 'text'; expected text"),
    }
    for name, (content, said) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(ValueError, match=said):
            load_labelled(tmp_path / name)
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(("text,label\n" + rows).encode()))
    (tmp_path / "zipped.csv").write_bytes((tmp_path / "data.csv.gz").read_bytes())
    with pytest.raises(ValueError, match=r"is gzip-compressed; decompress it"):
        load_labelled(tmp_path / "zipped.csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(ValueError, match=r"is a folder; give a .csv"):
        load_labelled(tmp_path / "folder.csv")
    (tmp_path / "mac.csv").write_text("label,text\r" + rows.replace("\n", "\r"), newline="")
    assert len(load_labelled(tmp_path / "mac.csv")) == 6
    lines = [{"text": f"line {i}", "label": [1, 1.0, 0][i % 3]} for i in range(12)]
    lines = [lines[0]] + [{**r, "split": "test" if i % 4 == 0 else "train"} for i, r in enumerate(lines[1:])]
    (tmp_path / "later.jsonl").write_text("\n".join(json.dumps(r) for r in lines))
    with pytest.raises(ValueError, match="row 1 has no 'split' value"):
        train_test(tmp_path / "later.jsonl")
    (tmp_path / "later.jsonl").write_text("\n".join(json.dumps(r) for r in lines[1:]))
    assert load_labelled(tmp_path / "later.jsonl").label_names == ["1", "0"]  # 1 and 1.0: one class
    (tmp_path / "trailing.csv").write_text("label,text\n" + rows.replace("\n", ",\n"))  # an exporter's empty field
    assert len(load_labelled(tmp_path / "trailing.csv")) == 6
    (tmp_path / "cased.csv").write_text("text,label,split\n" + "".join(f"t{i},{'ab'[i % 2]},Train\n" for i in range(4)))
    assert len(load_labelled(tmp_path / "cased.csv", split="train")) == 4
    import numpy as np
    import pandas as pd

    from probe.core.frames import as_splits

    table = pd.DataFrame({"text": [f"t{i}" for i in range(8)], "label": np.float32([1, 0] * 4), "split": ["train"] * 8})
    table.loc[5, "split"] = np.nan
    with pytest.raises(ValueError, match="row 6 has no 'split' value"):
        as_splits(table)
    assert as_splits(table.assign(split=["train"] * 4 + ["test"] * 4)).train.label_names == ["1", "0"]
    (tmp_path / "dups.csv").write_text("label,text\n" + rows + rows)
    with caplog.at_level(logging.WARNING, logger="probe"):
        train_test(tmp_path / "dups.csv")
    assert "test texts are also training texts (duplicate rows)" in caplog.text

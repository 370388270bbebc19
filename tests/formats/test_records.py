"""Every record probe writes, through the same checks (after PEFT's tests/test_config.py): written and read back
equal, an older file read, an unknown key warned about (not fatal), a wrong type refused in one line that names
the file and the field. A record class is any class of probe's with ``to_dict`` and a ``from_dict`` classmethod;
a new one fails :func:`test_records__every_record_class_is_checked` until it is added to :data:`CASES`."""

from __future__ import annotations

import importlib
import inspect
import json
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

import probe
from probe.core.io import dumps
from probe.experiments.audit.record import AuditReport
from probe.experiments.frontier.record import FrontierReport
from probe.experiments.replicate.record import Finding, ReplicateReport
from probe.experiments.wayward.record import WaywardReport
from probe.formats.effects import Effects
from probe.formats.explain_record import ExplainRecord, ImportanceTable, PositionImportance
from probe.formats.faithfulness_record import Faithfulness, StandIn
from probe.formats.hard_prompt import HardPrompt
from probe.formats.lens_record import LayerLens, LensRow
from probe.formats.manifest import DataRecord, Manifest
from probe.formats.schema import Record
from probe.training.config import TrainConfig

NAN = math.nan


def _position(i: int = 0) -> PositionImportance:
    values: dict[str, Any] = {"position": i, "nearest_token": "joy", "rank": i + 1}
    for v in ("removed", "nearest", "mean"):
        values |= {f"{v}_accuracy": 0.5, f"{v}_loss": 1.25, f"{v}_drop": 0.125, f"{v}_drop_ci": (0.0, 0.25)}
        values |= {f"{v}_loss_rise": 0.25, f"{v}_loss_rise_ci": (0.125, 0.375)}
    return PositionImportance(**values)


def _stand_in() -> StandIn:
    scores: dict[str, Any] = {"name": "discretised"}
    for s in ("accuracy", "agreement", "kl", "gain_retained", "loss"):
        scores |= {s: 0.5, f"{s}_ci": (0.25, 0.75)}
    scores["gain_retained_ci"] = (NAN, 0.75)  # an undefined bound, written as null
    return StandIn(**scores)


def _hard() -> HardPrompt:
    return HardPrompt(
        model="default", token_ids=[5, 7], tokens=["a", "b"], text="a b", hard_prompt_accuracy=0.5,
        soft_accuracy=0.75, discretised_accuracy=0.5, zero_shot_accuracy=0.25, holdout_accuracy=0.5,
        start_holdout_accuracy=0.25, changed_positions=1, steps=10, best_step=5, seed=0, task="cosine",
        method="search", word_share=0.5, perplexity=12.5, objective="target-likelihood",
    )  # fmt: skip


def _importance() -> ImportanceTable:
    return ImportanceTable(
        0.75, 0.5, 64, [_position(0), _position(1)], 100, task="target", objective="target-likelihood"
    )


def _lens() -> LayerLens:
    rows = [LensRow(0, 0, "joy", 0.5), LensRow(0, 1, "fear", NAN, logit_token="x")]
    return LayerLens(rows=rows, input_tokens=["joy"], holds_until=[0], layers=2, texts=8, task="cosine")


def _effects() -> Effects:
    table = pd.DataFrame(
        {"unit": ["zeppelin"], "label": ["joy"], "effect": [0.5], "prompted": [0.75], "zero_shot": [0.25], "count": [3]}
    )
    return Effects(kind="triggers", labels=["joy", "anger"], table=table, texts=40, min_count=2)


def _faith() -> Faithfulness:
    return Faithfulness(
        0.75, 0.5, 64, [_stand_in()], 100, task="cosine", soft_ci=(0.5, 1.0), soft_loss=0.5, zero_shot_loss=1.5
    )


def _finding() -> Finding:
    return Finding(
        number=2, name="Class labels persist", paper="they do", measured="the label in its top 5", verdict="yes",
        runs_used=3, estimate=1.0, interval=(1.0, 1.0), init_control=1.0, random_control=None, values={"k": 5},
    )  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One record class: a sample, an older file (``old``) and what reading it gives (``check``), and a field
    written with the wrong type (``bad``: field, value)."""

    sample: Callable[[], Any]
    old: dict[str, Any]
    check: Callable[[Any], bool]
    bad: tuple[str, Any]

    def read(self, data: Any) -> Any:
        cls = type(self.sample())
        if cls is TrainConfig:
            return TrainConfig.from_dict(data)
        return cls.from_dict(data, source="r.json")


MANIFEST = {"format": 1, "model": "default", "init": "class-label", "length": 2, "seed": 0, "status": "finished"}

CASES: dict[type, Case] = {
    PositionImportance: Case(
        _position,
        {"position": 3},
        lambda r: r.position == 3 and math.isnan(r.removed_drop) and math.isnan(r.removed_loss_rise_ci[0]),
        ("position", -1),
    ),
    ImportanceTable: Case(
        _importance,
        {"positions": [{"position": 0}]},
        lambda r: r.task is None and r.examples == 0 and r.objective == "classification",
        ("examples", "x"),
    ),
    LensRow: Case(
        lambda: LensRow(1, 2, "joy", 0.5),
        {"position": 0, "layer": 1, "token": "a"},
        lambda r: math.isnan(r.cosine) and r.logit_token is None,
        ("layer", 1.5),
    ),
    LayerLens: Case(
        _lens,
        {"rows": [{"position": 0, "layer": 2, "token": "a", "cosine": 0.5}], "holds_until": [1]},
        lambda r: r.layers == 3 and r.texts == 0 and r.task is None,
        ("holds_until", ["x"]),
    ),
    StandIn: Case(_stand_in, {**_stand_in().to_dict(), "kl": None}, lambda r: math.isnan(r.kl), ("agreement", "hi")),
    Faithfulness: Case(
        _faith,
        {"soft_accuracy": 0.75, "zero_shot_accuracy": None, "examples": 64, "stand_ins": [], "bootstrap": 10},
        lambda r: (
            r.task is None
            and math.isnan(r.soft_ci[0])
            and math.isnan(r.zero_shot_accuracy)
            and r.objective == "classification"
            and math.isnan(r.soft_loss)
        ),
        ("examples", "64"),
    ),
    Effects: Case(
        _effects,
        {"kind": "attribution", "labels": ["a", "b"], "texts": 3, "rows": []},
        lambda r: r.min_count == 1 and "mean_where_present" not in r.table,
        ("min_count", 0),
    ),
    HardPrompt: Case(
        _hard,
        {"model": "default", "token_ids": [1, 2], "accuracy": 0.625},
        lambda r: (
            r.hard_prompt_accuracy == 0.625
            and r.tokens == ["1", "2"]
            and r.task is None
            and r.objective == "classification"
            and r.method == "pez"
            and math.isnan(r.word_share)
            and math.isnan(r.perplexity)
        ),
        ("token_ids", [1.5]),
    ),
    ExplainRecord: Case(
        lambda: ExplainRecord("runs/x", 10, "default", _importance(), _hard(), _lens(), _faith(), None, _effects()),
        {
            "format": 1,
            "source": "runs/x",
            "step": 5,
            "soft_accuracy": 0.75,
            "test_examples": 64,
            "importance": [_position().__dict__ | {"removed_drop_ci": list(_position().removed_drop_ci)}],
            "hard_prompt": {"model": "default", "token_ids": [1]},
            "layer_lens": [{"position": 0, "layer": 0, "token": "a", "cosine": 0.5}],
            "lens_holds_until": [0],
        },
        lambda r: r.step == 5 and r.soft_accuracy == 0.75 and r.lens.layers == 1,
        ("step", "five"),
    ),
    DataRecord: Case(
        lambda: DataRecord("data.csv", "ab" * 32, 48, 16),
        {"sha256": "cd"},
        lambda r: r.path is None and r.train_size == 0 and r.changed_sha256 is None,
        ("train_size", -3),
    ),
    Manifest: Case(
        lambda: Manifest.from_dict({**MANIFEST, "labels": ["joy"], "final": {"soft_accuracy": 0.5}, "lr": 0.01}),
        {**MANIFEST, "final": {"accuracy": 0.75, "discrete_accuracy": 0.5}},
        lambda r: r.soft_accuracy == 0.75 and r.discretised_accuracy == 0.5,
        ("length", "20"),
    ),
    TrainConfig: Case(
        lambda: TrainConfig(init="class-label", length=4, steps=3, faithfulness_weight=0.5),
        {"format": 1, "init": "class-label", "length": 4},  # before the readable terms
        lambda r: r.faithfulness_weight == 0 and r.project_to is None,
        ("length", "four"),
    ),
    Finding: Case(
        _finding,
        {"number": 1, "name": "Semantic clusters", "holds": "no", "interval": [None, 0.5]},
        lambda r: r.verdict == "no" and math.isnan(r.interval[0]) and math.isnan(r.estimate),
        ("number", 0),
    ),
    ReplicateReport: Case(
        lambda: ReplicateReport({"model": "default"}, [_finding()], [{"init": "class-label", "soft_accuracy": None}]),
        {"format": 1, "findings": [{"number": 6, "name": "Accuracy", "holds": "unclear"}]},
        lambda r: r.findings[0].verdict == "unclear" and r.accuracy == [],
        ("findings", "none"),
    ),
    FrontierReport: Case(
        lambda: FrontierReport(
            0.5,
            [
                {
                    "run": "r",
                    "weight": 0.0,
                    "seed": 0,
                    "soft_accuracy": 0.75,
                    "discretised_accuracy": 0.5,
                    "agreement": 0.5,
                    "kl": 0.25,
                    "gain_retained": NAN,
                    "pareto": True,
                    "gain_retained_ci": [NAN, NAN],
                }
            ],
            {"model": "default"},
        ),
        {
            "format": 1,
            "zero_shot_accuracy": 0.5,
            "runs": [
                {
                    "run": "r",
                    "weight": 0,
                    "seed": 0,
                    "soft_accuracy": 0.75,
                    "discretised_accuracy": 0.5,
                    "agreement": 0.5,
                    "kl": None,
                    "gain_retained": None,
                    "pareto": False,
                }
            ],
        },
        lambda r: math.isnan(r.runs[0]["kl"]) and r.aim == {},
        ("zero_shot_accuracy", "0.5"),
    ),
    WaywardReport: Case(
        lambda: WaywardReport(
            0.75,
            [
                {
                    "target": "text",
                    "text": "a b",
                    "runs": ["r"],
                    "soft_accuracy": 0.75,
                    "cost": NAN,
                    "cost_ci": [NAN, 0.5],
                    "reads_as_target": 1.0,
                }
            ],
            "c",
        ),
        {"format": 1, "free_accuracy": 0.75, "conclusion": "c", "targets": []},
        lambda r: r.targets == [] and r.context == {},
        ("conclusion", 3),
    ),
    AuditReport: Case(
        lambda: AuditReport(
            [{"run": "r", "share": 0.9, "seed": 0, "flip_rate": 0.5, "clean_accuracy": 0.75, "relies": True}],
            [
                {
                    "name": "trigger scan",
                    "detection_rate": NAN,
                    "false_alarm_rate": 0.0,
                    "spearman": NAN,
                    "found": {"r": True},
                    "detection_ci": [NAN, NAN],
                }
            ],
        ),
        {
            "format": 1,
            "runs": [],
            "readings": [
                {
                    "name": "n",
                    "detection_rate": None,
                    "false_alarm_rate": None,
                    "spearman": None,
                    "found": {},
                    "detection_ci": [None, None],
                }
            ],
        },
        lambda r: (
            math.isnan(r.readings[0]["detection_rate"])
            and math.isnan(r.readings[0]["detection_ci"][1])
            and r.verdict == "inconclusive"
        ),  # an audit without a verdict is judged from its runs: none relies
        ("runs", {"run": "r"}),
    ),
}


def _record_classes() -> set[type]:
    """Every class of probe's that defines ``from_dict`` or inherits it from :class:`Record` (the base itself and
    the dashboard's modules, which run Streamlit, aside)."""
    found = set()
    for info in pkgutil.walk_packages(probe.__path__, "probe."):
        if info.name.startswith("probe.dashboard") or info.name == "probe.__main__":
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            reads = "from_dict" in vars(cls) or issubclass(cls, Record)
            if cls.__module__ == module.__name__ and reads and cls is not Record:
                found.add(cls)
    return found


def _json(record: Any) -> str:
    return dumps(record.to_dict())


def test_records__every_record_class_is_checked():
    assert _record_classes() == set(CASES)


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_record__written_and_read_back_it_is_the_same(cls):
    case = CASES[cls]
    record = case.sample()
    again = case.read(json.loads(_json(record)))
    assert type(again) is cls
    assert _json(again) == _json(record)


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_record__an_older_file_is_read(cls):
    case = CASES[cls]
    assert case.check(case.read(json.loads(json.dumps(case.old))))


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_record__an_unknown_key_is_warned_about_not_fatal(cls):
    case = CASES[cls]
    data = json.loads(_json(case.sample())) | {"written_by_a_newer_probe": 1}
    with pytest.warns(UserWarning, match="written_by_a_newer_probe"):
        record = case.read(data)
    assert type(record) is cls


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_record__a_wrong_type_is_refused_in_one_line_naming_the_field(cls):
    case = CASES[cls]
    field, value = case.bad
    data = json.loads(_json(case.sample())) | {field: value}
    with pytest.raises((ValueError, TypeError), match=field) as caught:
        case.read(data)
    message = str(caught.value)
    assert "\n" not in message
    assert cls is TrainConfig or "r.json" in message

"""Where the Python API takes its arguments, a wrong one is one line naming it (a red-team of the API found these
failing deep inside: an AttributeError of a model's name or of swapped arguments, a format error of a step given
as text, a half-written metrics line, a 'data changed' of data that was another set)."""

from __future__ import annotations

import json

import pytest

from probe.formats.discovery import load_run
from probe.formats.prompts import load_prompt
from probe.readings.explain import Readout, importance, score_stand_ins


def test_readings__a_model_name_or_swapped_arguments_are_one_line(demo_runs, default_model):
    run = load_run(demo_runs / "class-label")
    with pytest.raises(TypeError, match=r"model is a str; expected a loaded model \(probe.load_model"):
        Readout.from_run(run, "default")
    with pytest.raises(TypeError, match="model is a str; expected a loaded model"):
        Readout.from_data("default", "feelings", form="cosine")
    with pytest.raises(TypeError, match="model is a str; expected a loaded model"):
        load_prompt(demo_runs / "class-label", model="default")
    readout = Readout.from_run(run, default_model, test_size=8)
    prompt = run.latest_prompt()
    for reading in (importance, score_stand_ins):
        with pytest.raises(TypeError, match=r"readout is a SoftPrompt; expected a Readout \(Readout.from_run"):
            reading(readout, prompt)  # the arguments swapped
    with pytest.raises(TypeError, match="readout is a LoadedModel; expected a Readout"):
        importance(prompt, default_model)
    with pytest.raises(ValueError, match=r"role 'middle' is not known; expected 'encoder' or 'decoder'"):
        load_prompt(demo_runs / "class-label", role="middle")


def test_run__a_step_as_text_and_another_data_set_say_what_they_are(demo_runs, default_model):
    run = load_run(demo_runs / "class-label")
    last = run.steps[-1]
    with pytest.raises(TypeError, match=rf"step is '{last}'; expected a whole number, one of the run's steps"):
        run.snapshot(str(last))
    assert run.snapshot(last).step == last
    with pytest.raises(ValueError, match=r"the data given \('topics'\) is not the data run .* was trained on"):
        Readout.from_run(run, default_model, data="topics")


def test_track__a_step_as_text_or_going_back_is_refused_before_anything_is_written(tmp_path):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModel

    from probe.core.models import bundled_model_path
    from probe.training.integrations import track

    peft_model = get_peft_model(
        AutoModel.from_pretrained(bundled_model_path()),
        PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=2),
    )
    with track(peft_model, tmp_path / "run", every=2) as recorder:
        recorder.step(1, loss=1.0)
        with pytest.raises(TypeError, match=r"step is '3'; expected the whole number of optimisation steps"):
            recorder.step("3", loss=1.0)
        recorder.step(2, loss=0.5)
        with pytest.raises(ValueError, match="step 1 comes before step 2, already recorded"):
            recorder.step(1, loss=0.4)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines if '"train"' in line] == [1, 2]


def test_readings__counts_and_lists_they_cannot_use_are_one_line(demo_runs, default_model):
    """Each failed in numpy or torch, or read an empty scan (errors.md 203)."""
    import inspect

    import numpy as np

    import probe
    from probe.readings.compare import compare_prompts
    from probe.readings.drift import drift_table
    from probe.readings.explain import harden, layer_lens
    from probe.readings.explain.triggers import trigger_scan

    run = load_run(demo_runs / "class-label")
    readout, prompt = Readout.from_run(run, default_model, test_size=8), run.latest_prompt()
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match=rf"bootstrap is {bad!r}; expected a whole number of resamples"):
            importance(prompt, readout, bootstrap=bad)
    with pytest.raises(ValueError, match=r"test_size is 2.5; expected a whole, positive number of rows"):
        Readout.from_data(default_model, "feelings", form="cosine", test_size=2.5)
    with pytest.raises(ValueError, match=r"lr is -1; expected a positive learning rate"):
        harden(prompt, readout, lr=-1, steps=1)
    with pytest.raises(TypeError, match=r"steps is 5; expected a list of the run's steps"):
        drift_table(run, default_model, steps=5)
    with pytest.raises(ValueError, match=r"chunk is 0; expected a positive number"):
        drift_table(run, default_model, chunk=0)
    with pytest.raises(ValueError, match=r"display has 1 token texts; expected one per token id"):
        compare_prompts(prompt, prompt, default_model, display=["x"])
    with pytest.raises(ValueError, match=r"texts is \['a text'\]; expected how many test texts"):
        layer_lens(prompt, readout, texts=["a text"])
    with pytest.raises(ValueError, match="texts is empty; give the texts each token is appended to"):
        trigger_scan(prompt, readout, texts=[])
    assert list(inspect.signature(probe.explain).parameters)[:2] == ["prompt", "readout"]  # not (*args, **kwargs)
    assert np.isfinite(importance(prompt, readout, bootstrap=np.int64(20)).to_dataframe()["removed_loss"]).all()

"""A live PEFT model handed to a reading (``as_prompt``) or recorded (``probe.track``) is read as the prompt PEFT
feeds its model, the same as its saved adapter: P-tuning's encoder output (its input rows were read), a seq2seq
prompt's encoder rows (its decoder rows were appended), and a multitask model refused in one line (its shared rows
were read as if they were a task's prompt)."""

from __future__ import annotations

import numpy as np
import pytest

import probe
from probe.core.softprompt import as_prompt
from probe.formats.prompts import load_prompt


def _peft(kind: str, config_name: str, path):
    from peft import MultitaskPromptTuningConfig, PromptEncoderConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    task_type = "CAUSAL_LM" if kind == "causal" else "SEQ_2_SEQ_LM"
    config = {
        "PROMPT_TUNING": lambda: PromptTuningConfig(task_type=task_type, num_virtual_tokens=3),
        "P_TUNING": lambda: PromptEncoderConfig(task_type=task_type, num_virtual_tokens=3, encoder_hidden_size=16),
        "MULTITASK": lambda: MultitaskPromptTuningConfig(
            task_type=task_type, num_virtual_tokens=3, num_tasks=2, num_ranks=2
        ),
    }[config_name]()
    auto = AutoModelForCausalLM if kind == "causal" else AutoModelForSeq2SeqLM
    return get_peft_model(auto.from_pretrained(path), config)


@pytest.mark.parametrize(
    ("fixture", "kind", "method", "rows", "role"),
    [
        ("tiny_gpt2_path", "causal", "P_TUNING", 3, None),
        ("tiny_t5_path", "seq2seq", "PROMPT_TUNING", 3, "encoder"),
        ("tiny_t5_path", "seq2seq", "P_TUNING", 3, "encoder"),
    ],
)
def test_live_peft__a_reading_and_a_recorded_run_read_what_the_saved_adapter_holds(
    fixture, kind, method, rows, role, request, tmp_path, perturb
):
    peft_model = _peft(kind, method, request.getfixturevalue(fixture))
    perturb(peft_model, seed=5)
    peft_model.train()  # P-tuning's encoder has dropout: the reading is the eval-mode output, as PEFT saves it
    peft_model.save_pretrained(tmp_path / "adapter")
    saved = load_prompt(tmp_path / "adapter")
    live = as_prompt(peft_model)
    assert live.vectors.shape == (rows, saved.dim) and live.role == role == saved.role
    np.testing.assert_allclose(live.vectors, saved.vectors, atol=1e-6)
    weight = peft_model.prompt_encoder["default"].embedding.weight.detach().numpy()
    if method == "P_TUNING":  # the encoder's input rows are not the prompt
        assert not np.allclose(live.vectors, weight[:rows], atol=1e-3)
    assert peft_model.prompt_encoder["default"].training  # the encoder is left as it was
    with probe.track(peft_model, tmp_path / "run", every=1) as recorder:
        recorder.step(1, loss=1.0)
    np.testing.assert_allclose(probe.load_run(tmp_path / "run").latest_prompt().vectors, saved.vectors, atol=1e-6)


def test_live_peft__a_multitask_model_is_refused_in_one_line_and_no_run_is_begun(tiny_gpt2_path, tmp_path):
    peft_model = _peft("causal", "MULTITASK", tiny_gpt2_path)
    with pytest.raises(ValueError, match=r"one prompt per task.*probe.load_prompt\(DIR, task_id=T\)"):
        as_prompt(peft_model)
    with pytest.raises(ValueError, match="MULTITASK_PROMPT_TUNING model has one prompt per task"):
        probe.track(peft_model, tmp_path / "run", every=1)
    assert not (tmp_path / "run").exists()

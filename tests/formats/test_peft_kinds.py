"""probe.formats.adapters: every input-space prompt PEFT trains, read as what it is and checked against PEFT itself
(P-tuning's encoder output, a multitask prompt per task, CPT with the tokens it started as); a key-value adapter
refused where input rows are read, a non-prompt adapter everywhere, in one line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from probe.cli import main
from probe.formats.prompts import load_prompt, load_prompts


def test_p_tuning__the_saved_prompt_is_the_encoders_output_and_the_head_reads_as_peft_does(
    perturb, tmp_path, default_model
):
    from peft import PeftModel, PromptEncoderConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from probe.core.models import bundled_model_path
    from probe.readings.explain.readout import Readout

    base = AutoModelForSequenceClassification.from_pretrained(bundled_model_path(), num_labels=4)
    config = PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=4, encoder_hidden_size=16)
    peft_model = get_peft_model(base, config)
    perturb(peft_model)
    peft_model.save_pretrained(tmp_path / "ptuning")
    expected = peft_model.get_prompt(batch_size=1)[0].detach().numpy()

    prompt = load_prompt(tmp_path / "ptuning")
    assert prompt.metadata["peft_type"] == "P_TUNING"
    np.testing.assert_allclose(prompt.vectors, expected, atol=1e-6)

    readout = Readout.for_prompt(prompt, default_model, "feelings", test_size=8)
    texts = readout.splits.test.texts
    reloaded = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(bundled_model_path(), num_labels=4), tmp_path / "ptuning"
    ).eval()
    batch = default_model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        peft_logits = reloaded(**batch).logits.numpy()
    np.testing.assert_allclose(readout.scores(prompt.vectors, readout.splits.test), peft_logits, atol=1e-5)


def _multitask(tiny_gpt2_path, tmp_path, perturb):
    from peft import MultitaskPromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    config = MultitaskPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3, num_tasks=3, num_ranks=2)
    peft_model = get_peft_model(base, config)
    perturb(peft_model)
    peft_model.save_pretrained(tmp_path / "multi")
    return peft_model


def test_multitask__one_prompt_per_task_as_peft_forms_it_and_never_the_shared_rows(perturb, tiny_gpt2_path, tmp_path):
    peft_model = _multitask(tiny_gpt2_path, tmp_path, perturb)
    prompts = load_prompts(tmp_path / "multi")
    assert [p.metadata["task_id"] for p in prompts] == [0, 1, 2]
    for task, prompt in enumerate(prompts):
        expected = peft_model.get_prompt(batch_size=1, task_ids=torch.tensor([task]))[0].detach().numpy()
        np.testing.assert_allclose(prompt.vectors, expected, atol=1e-6)
    assert not np.allclose(prompts[0].vectors, prompts[1].vectors)
    assert load_prompt(tmp_path / "multi", task_id=2).metadata["task_id"] == 2
    with pytest.raises(ValueError, match=r"multitask prompt of 3 tasks.*--task-id"):
        load_prompt(tmp_path / "multi")
    with pytest.raises(ValueError, match="task id 7"):
        load_prompt(tmp_path / "multi", task_id=7)


def test_multitask__a_loose_weights_file_is_read_as_what_it_is(perturb, tiny_gpt2_path, tmp_path):
    peft_model = _multitask(tiny_gpt2_path, tmp_path, perturb)
    loose = tmp_path / "weights.safetensors"
    shutil.copy(tmp_path / "multi" / "adapter_model.safetensors", loose)
    prompt = load_prompt(loose, task_id=1)
    expected = peft_model.get_prompt(batch_size=1, task_ids=torch.tensor([1]))[0].detach().numpy()
    np.testing.assert_allclose(prompt.vectors, expected, atol=1e-6)
    with pytest.raises(ValueError, match="multitask prompt"):
        load_prompt(loose)


def test_report__a_multitask_prompt_per_task_and_refused_without_one(perturb, tiny_gpt2_path, tmp_path, capsys):
    _multitask(tiny_gpt2_path, tmp_path, perturb)
    folder = str(tmp_path / "multi")
    capsys.readouterr()
    assert main(["report", folder, "--model", str(tiny_gpt2_path), "--task-id", "1"]) == 0
    assert "task 1" in capsys.readouterr().out
    assert main(["report", folder, "--model", str(tiny_gpt2_path)]) == 2
    err = capsys.readouterr().err
    assert "--task-id" in err and len(err.strip().splitlines()) == 1


def _multitask_checkpoints(tiny_gpt2_path, folder, perturb) -> dict[int, list[np.ndarray]]:
    """checkpoint-0/ and checkpoint-5/ of a multitask prompt; returns each step's prompt per task as PEFT forms it."""
    from peft import MultitaskPromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = MultitaskPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3, num_tasks=3, num_ranks=2)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_gpt2_path), config)
    expected = {}
    for step in (0, 5):
        perturb(peft_model, seed=step)
        peft_model.save_pretrained(folder / f"checkpoint-{step}")
        expected[step] = [
            peft_model.get_prompt(batch_size=1, task_ids=torch.tensor([t]))[0].detach().numpy() for t in range(3)
        ]
    return expected


def test_multitask_run__each_task_read_as_peft_forms_it_and_never_a_default_task(perturb, tiny_gpt2_path, tmp_path):
    from probe.formats.discovery import load_run

    expected = _multitask_checkpoints(tiny_gpt2_path, tmp_path / "run", perturb)
    run = load_run(tmp_path / "run")
    assert run.task_ids == [0, 1, 2] and run.task is None
    for step in (0, 5):
        for task in range(3):
            prompt = run.for_task(task).snapshot(step)
            np.testing.assert_allclose(prompt.vectors, expected[step][task], atol=1e-6)
            assert prompt.metadata["task_id"] == task
    assert run.for_task(1).signature != run.for_task(2).signature  # caches keyed by signature keep tasks apart
    assert load_prompt(tmp_path / "run", task_id=2).step == 5
    with pytest.raises(ValueError, match=r"multitask prompt of 3 tasks, each with its own prompt; pick one"):
        run.snapshot(5)
    with pytest.raises(ValueError, match=r"multitask prompt of 3 tasks and task id 3 was given; pick one from 0 to 2"):
        run.for_task(3)
    (tmp_path / "plain").mkdir()
    np.save(tmp_path / "plain" / "step-0.npy", np.ones((2, 32), np.float32))
    with pytest.raises(ValueError, match=r"is not a multitask run; it has no task 0: drop the task id"):
        load_run(tmp_path / "plain").for_task(0)


def test_cli__compare_two_tasks_of_one_multitask_prompt(perturb, tiny_gpt2_path, tmp_path, capsys):
    import json

    from probe.core.index import VocabIndex
    from probe.core.models import load_model
    from probe.readings.compare import compare_prompts

    _multitask(tiny_gpt2_path, tmp_path, perturb)
    folder, model = str(tmp_path / "multi"), ["--model", str(tiny_gpt2_path)]
    capsys.readouterr()
    args = ["compare", folder, folder, *model, "--task-a", "0", "--task-b", "2", "--format", "json"]
    assert main(args) == 0
    table = json.loads(capsys.readouterr().out)
    loaded = load_model(str(tiny_gpt2_path), device="cpu")
    a, b = load_prompt(folder, task_id=0), load_prompt(folder, task_id=2)
    expected = compare_prompts(a, b, VocabIndex.for_model(loaded), k=5, display=loaded.vocabulary.display)
    assert [row["cosine"] for row in table] == pytest.approx(list(expected.by_position["cosine"]), abs=1e-6)
    assert any(row["cosine"] < 0.999 for row in table)  # two tasks' prompts differ
    capsys.readouterr()
    assert main(["compare", folder, folder, *model, "--task-a", "1"]) == 2  # B names no task: one line asking
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pick one with --task-b" in err


def test_cli__drift_and_explain_of_a_multitask_run_per_task_and_refused_without_one(
    perturb, tiny_gpt2_path, tmp_path, capsys
):
    import json

    _multitask_checkpoints(tiny_gpt2_path, tmp_path / "run", perturb)
    folder, model = str(tmp_path / "run"), ["--model", str(tiny_gpt2_path)]
    capsys.readouterr()
    tables = {}
    for task in ("0", "2"):
        assert main(["drift", folder, *model, "--task-id", task, "--format", "json"]) == 0
        tables[task] = json.loads(capsys.readouterr().out)
    assert len(tables["0"]) == 2 * 3 and tables["0"] != tables["2"]
    for command in ("drift", "explain"):
        for extra, message in [([], "pick one with --task-id"), (["--task-id", "5"], "task id 5 was given")]:
            assert main([command, folder, *model, *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and message in err, (command, err)
    assert main(["explain", folder, *model, "--task-id", "1"]) == 2  # the task is read; a loop's run needs --data
    assert "records no training data" in capsys.readouterr().err


def test_cpt__each_position_reads_with_the_token_it_started_as(perturb, tiny_gpt2_path, tmp_path, capsys):
    from peft import CPTConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    import probe

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    starts = [5, 17, 42, 99]
    config = CPTConfig(task_type="CAUSAL_LM", cpt_token_ids=starts, cpt_mask=[1] * 4, cpt_tokens_type_mask=[1, 2, 2, 1])
    peft_model = get_peft_model(base, config)
    perturb(peft_model)
    peft_model.save_pretrained(tmp_path / "cpt")
    expected = peft_model.get_prompt(batch_size=1)[0].detach().numpy()

    prompt = load_prompt(tmp_path / "cpt")
    np.testing.assert_allclose(prompt.vectors, expected, atol=1e-6)
    assert prompt.metadata["init_token_ids"] == starts
    model = probe.load_model(str(tiny_gpt2_path), device="cpu")
    report = probe.nearest_tokens(prompt, model, k=3)
    table = model.embeddings_numpy()[starts]
    cos = (expected * table).sum(1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(table, axis=1)
    assert [p.started_as for p in report.positions] == [model.vocabulary.display[t] for t in starts]
    np.testing.assert_allclose([p.cos_to_start for p in report.positions], cos, atol=1e-5)
    assert "started as" in report.to_markdown() and "cos_to_start" in report.to_dataframe()


@pytest.mark.parametrize("kind", ["prefix", "lora"])
def test_adapters__key_value_and_non_prompt_adapters_are_refused_in_one_line(tiny_gpt2_path, tmp_path, capsys, kind):
    """A LoRA adapter is refused by every command; a prefix is refused where input rows are read (load_prompt)
    and read per layer by `probe report` (tests/readings/test_prefix.py)."""
    from peft import LoraConfig, PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    if kind == "prefix":
        config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3)
    else:
        config = LoraConfig(task_type="CAUSAL_LM", target_modules=["c_attn"], r=2)
    get_peft_model(base, config).save_pretrained(tmp_path / kind)
    capsys.readouterr()  # transformers' own loading bar
    if kind == "prefix":
        with pytest.raises(ValueError, match=r"key and a value per layer.*read it per layer: probe report.*P_TUNING"):
            load_prompt(tmp_path / kind)
        return
    assert main(["report", str(tmp_path / kind), "--model", str(tiny_gpt2_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not a soft prompt" in err and "P_TUNING" in err and "PREFIX_TUNING" in err

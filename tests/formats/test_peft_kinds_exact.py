"""P-tuning, multitask and CPT prompts on a causal and a seq2seq model: probe reads the prompt PEFT feeds the model
(P-tuning's encoder output, each task's own prompt, CPT's tokens plus their delta), and its readout's per-example
loss under free-text targets equals PEFT's own forward pass with the adapter itself, one example at a time (the
encoder case: P-tuning's ``SEQ_CLS`` head in tests/formats/test_peft_kinds.py, multitask's here). A seq2seq multitask
prompt, whose other rows PEFT puts before the decoder's input, is scored with them; its decoder's half alone is
refused by the readout in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe.core.data import from_rows
from probe.core.models import load_model
from probe.formats.prompts import load_prompt
from probe.readings.explain import Readout

ROWS = [
    {"text": f"{text} {n}", "summary": summary}
    for n, (text, summary) in enumerate(
        [
            ("the team won the final", "sports news"),
            ("scientists measured the spin", "a physics result"),
            ("shares fell", "markets went down sharply"),
            ("voters went to the polls", "an election"),
        ]
        * 3
    )
]


def _adapter(kind: str, method: str, path, folder, perturb):
    from peft import CPTConfig, MultitaskPromptTuningConfig, PromptEncoderConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    task_type = "CAUSAL_LM" if kind == "causal" else "SEQ_2_SEQ_LM"
    configs = {
        "P_TUNING": lambda: PromptEncoderConfig(task_type=task_type, num_virtual_tokens=3, encoder_hidden_size=16),
        "MULTITASK_PROMPT_TUNING": lambda: MultitaskPromptTuningConfig(
            task_type=task_type, num_virtual_tokens=3, num_tasks=2, num_ranks=2
        ),
        # no demonstration labels in the prompt (no type a multiple of 4): PEFT's CPT loss is the target's own
        "CPT": lambda: CPTConfig(
            task_type=task_type, cpt_token_ids=[5, 17, 42], cpt_mask=[1] * 3, cpt_tokens_type_mask=[1, 2, 3]
        ),
    }
    config = configs[method]()
    auto = AutoModelForCausalLM if kind == "causal" else AutoModelForSeq2SeqLM
    peft_model = get_peft_model(auto.from_pretrained(path), config)
    perturb(peft_model, seed=3)
    peft_model.save_pretrained(folder)
    return auto


def _peft_loss(peft, tokenizer, kind: str, text: str, target: str, task: int | None) -> float:
    """PEFT's own mean target-token loss of one example (the adapter as PEFT loads it)."""
    text_ids = tokenizer(text, truncation=True, max_length=64)["input_ids"]
    if kind == "causal":
        target_ids = tokenizer(" " + target, add_special_tokens=False)["input_ids"]
        ids, labels = torch.tensor([text_ids + target_ids]), torch.tensor([[-100] * len(text_ids) + target_ids])
    else:
        ids, labels = torch.tensor([text_ids]), torch.tensor([tokenizer(target)["input_ids"]])
    extra = {} if task is None else {"task_ids": torch.tensor([task])}
    with torch.no_grad():
        return float(peft(input_ids=ids, labels=labels, **extra).loss)


@pytest.mark.parametrize(
    ("fixture", "kind", "method"),
    [
        ("tiny_gpt2_path", "causal", "P_TUNING"),
        ("tiny_t5_path", "seq2seq", "P_TUNING"),
        ("tiny_gpt2_path", "causal", "MULTITASK_PROMPT_TUNING"),
        ("tiny_t5_path", "seq2seq", "MULTITASK_PROMPT_TUNING"),
        ("tiny_gpt2_path", "causal", "CPT"),
    ],
)
def test_peft_prompt__the_readout_s_loss_per_example_equals_peft_s_forward(
    fixture, kind, method, request, tmp_path, perturb
):
    from peft import PeftModel

    path = request.getfixturevalue(fixture)
    model = load_model(path, device="cpu")
    auto = _adapter(kind, method, path, tmp_path / "adapter", perturb)
    peft = PeftModel.from_pretrained(auto.from_pretrained(path), tmp_path / "adapter").eval()
    data = from_rows(ROWS, source="<rows>", target_column="summary")
    for task in [0, 1] if method == "MULTITASK_PROMPT_TUNING" else [None]:
        prompt = load_prompt(tmp_path / "adapter", task_id=task)
        assert prompt.metadata["peft_type"] == method
        extra = {} if task is None else {"task_ids": torch.tensor([task])}
        fed = peft.get_prompt(batch_size=1, **extra)[0, :3].detach().numpy()  # the rows PEFT puts before the input
        np.testing.assert_allclose(prompt.vectors, fed, atol=1e-6)
        readout = Readout.for_prompt(prompt, model, data, target_column="summary")
        assert readout.objective == "target-likelihood"
        test = readout.splits.test
        _, loss = readout.outcome(prompt.vectors, test)
        expected = [
            _peft_loss(peft, model.tokenizer, kind, text, target, task)
            for text, target in zip(test.texts, test.target_texts, strict=True)
        ]
        np.testing.assert_allclose(loss, expected, atol=1e-5, rtol=0)


def test_peft_prompt__a_seq2seq_multitask_prompt_s_decoder_rows_are_read_and_only_with_its_encoder_rows(
    tiny_t5_path, tmp_path, perturb, capsys
):
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM

    from probe.cli.parser import main

    model = load_model(tiny_t5_path, device="cpu")
    _adapter("seq2seq", "MULTITASK_PROMPT_TUNING", tiny_t5_path, tmp_path / "adapter", perturb)
    peft = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_path), tmp_path / "adapter").eval()
    decoder = load_prompt(tmp_path / "adapter", task_id=1, role="decoder")
    fed = peft.get_prompt(batch_size=1, task_ids=torch.tensor([1]))[0, 3:].detach().numpy()
    np.testing.assert_allclose(decoder.vectors, fed, atol=1e-6)  # the rows PEFT puts before the decoder's input
    data = from_rows(ROWS, source="<rows>", target_column="summary")
    with pytest.raises(ValueError, match=r"\(task 1\) is the decoder's half of a seq2seq multitask prompt; .*--role"):
        Readout.for_prompt(decoder, model, data, target_column="summary")
    readout = Readout.for_prompt(load_prompt(tmp_path / "adapter", task_id=1), model, data, target_column="summary")
    assert readout.task_name == "target+decoder-rows"
    np.testing.assert_array_equal(readout.decoder_prompt, decoder.vectors)
    held = readout.outcome(load_prompt(tmp_path / "adapter", task_id=1).vectors, readout.splits.test)[1]
    readout.decoder_prompt = np.zeros_like(decoder.vectors)  # other rows there: another loss, so they are read
    readout._tasks.clear()
    assert (
        np.abs(
            held - readout.outcome(load_prompt(tmp_path / "adapter", task_id=1).vectors, readout.splits.test)[1]
        ).max()
        > 1e-3
    )
    capsys.readouterr()
    args = ["report", str(tmp_path / "adapter"), "--task-id", "1", "--role", "decoder", "--model", str(tiny_t5_path)]
    assert main(args) == 0 and "decoder prompt, task 1" in capsys.readouterr().out


def test_peft_prompt__a_seq2seq_multitask_prompt_with_a_user_s_loss_is_one_line(tiny_t5_path, tmp_path, perturb):
    model = load_model(tiny_t5_path, device="cpu")
    _adapter("seq2seq", "MULTITASK_PROMPT_TUNING", tiny_t5_path, tmp_path / "adapter", perturb)
    data = from_rows(ROWS, source="<rows>", target_column="summary")

    def loss(model, batch):
        return model(**batch).loss.expand(len(batch["input_ids"]))

    with pytest.raises(
        ValueError,
        match=r"decoder rows are put before the decoder's input by probe.s own .*drop --loss \(score=/loss=/task=\)",
    ):
        Readout.for_prompt(load_prompt(tmp_path / "adapter", task_id=0), model, data, loss=loss)


def test_peft_prompt__a_multitask_seq_cls_prompt_scores_each_task_as_peft_s_forward(perturb, tmp_path, default_model):
    """The encoder case of a multitask prompt: the bundled encoder with a SEQ_CLS head, each task's logits equal
    PEFT's own forward given that task's id."""
    from peft import MultitaskPromptTuningConfig, PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from probe.core.models import bundled_model_path

    def head_model():
        return AutoModelForSequenceClassification.from_pretrained(bundled_model_path(), num_labels=4)

    config = MultitaskPromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4, num_tasks=2, num_ranks=2)
    peft_model = get_peft_model(head_model(), config)
    perturb(peft_model, seed=2)
    peft_model.save_pretrained(tmp_path / "multi")
    reloaded = PeftModel.from_pretrained(head_model(), tmp_path / "multi").eval()
    scores = []
    for task in (0, 1):
        prompt = load_prompt(tmp_path / "multi", task_id=task)
        readout = Readout.for_prompt(prompt, default_model, "feelings", test_size=8)
        texts = readout.splits.test.texts
        batch = default_model.tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            expected = reloaded(**batch, task_ids=torch.tensor([task] * len(texts))).logits.numpy()
        scores.append(readout.scores(prompt.vectors, readout.splits.test))
        np.testing.assert_allclose(scores[-1], expected, atol=1e-5)
    assert np.abs(scores[0] - scores[1]).max() > 1e-3  # each task its own prompt


def test_peft_prompt__a_seq2seq_multitask_prompt_s_decoder_rows_are_held_in_every_pass_and_tied_to_its_task(
    tiny_t5_path, tmp_path, perturb
):
    """The frozen model's pass holds the decoder rows too (every figure reads what the encoder's rows add to them);
    a reading given the prompt of another task, or a readout without its rows, is one line; so is a loose multitask
    file, which records no split between encoder and decoder."""
    from probe.readings.explain import importance

    model = load_model(tiny_t5_path, device="cpu")
    _adapter("seq2seq", "MULTITASK_PROMPT_TUNING", tiny_t5_path, tmp_path / "adapter", perturb)
    data = from_rows(ROWS, source="<rows>", target_column="summary")
    prompts = [load_prompt(tmp_path / "adapter", task_id=t) for t in (0, 1)]
    readout = Readout.for_prompt(prompts[0], model, data, target_column="summary")
    test = readout.splits.test
    rows = torch.from_numpy(readout.decoder_prompt)[None]
    text, target = test.texts[0], model.tokenizer(test.target_texts[0])["input_ids"]
    shifted = torch.tensor([[model.model.config.decoder_start_token_id, *target[:-1]]])
    embeds = torch.cat([rows, model.model.get_input_embeddings()(shifted)], 1)
    with torch.no_grad():
        logits = model.model(input_ids=torch.tensor([model.tokenizer(text)["input_ids"]]), decoder_inputs_embeds=embeds)
    logp = logits.logits[0, 3:].log_softmax(-1)[torch.arange(len(target)), target]
    frozen = readout.task(1).outcome(test, prompt=False)[1]
    assert frozen[0] == pytest.approx(float(-logp.mean()), abs=1e-5)  # the rows, then the target: no encoder prompt
    plain = Readout.from_data(model, data, target_column="summary")
    assert np.abs(plain.task(1).outcome(test, prompt=False)[1] - frozen).max() > 1e-3
    with pytest.raises(ValueError, match=r"\(task 1\) is a seq2seq multitask prompt whose decoder rows this readout"):
        importance(prompts[1], readout, bootstrap=10)
    with pytest.raises(ValueError, match=r"\(task 0\) is a seq2seq multitask prompt whose decoder rows this readout"):
        importance(prompts[0], plain, bootstrap=10)
    loose = load_prompt(tmp_path / "adapter" / "adapter_model.safetensors", task_id=0)
    with pytest.raises(
        ValueError, match="is a loose multitask PEFT weights file read with a seq2seq model: PEFT keeps"
    ):
        Readout.for_prompt(loose, model, data, target_column="summary")


def test_peft_prompt__a_loose_seq2seq_prompt_file_is_refused_and_explain_names_the_task(
    tiny_t5_path, tmp_path, perturb, capsys
):
    """A loose PEFT weights file records no split between a seq2seq model's encoder and decoder rows (PEFT keeps 2n
    rows by default): reading all of them before the encoder would be silently wrong. ``probe explain`` of a
    multitask prompt says which task it read."""
    import csv
    import json

    from probe.cli.parser import main

    model = load_model(tiny_t5_path, device="cpu")
    _adapter("seq2seq", "P_TUNING", tiny_t5_path, tmp_path / "ptuning", perturb)
    data = from_rows(ROWS, source="<rows>", target_column="summary")
    loose = load_prompt(tmp_path / "ptuning" / "adapter_model.safetensors")
    with pytest.raises(ValueError, match="is a loose PEFT weights file read with a seq2seq model: PEFT keeps"):
        Readout.for_prompt(loose, model, data, target_column="summary")
    _adapter("seq2seq", "MULTITASK_PROMPT_TUNING", tiny_t5_path, tmp_path / "multi", perturb)
    with (tmp_path / "rows.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "summary"])
        writer.writeheader()
        writer.writerows(ROWS)
    args = ["explain", str(tmp_path / "multi"), "--task-id", "1", "--model", str(tiny_t5_path)]
    args += ["--data", str(tmp_path / "rows.csv"), "--target-column", "summary", "--hard-steps", "2"]
    args += ["--lens-texts", "2", "--lens-tokens", "50", "--bootstrap", "20", "--no-progress", "--format", "json"]
    capsys.readouterr()
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["source"].endswith("multi [task 1]") and record["importance"]["task"] == "target+decoder-rows"


def test_cli__compare_the_decoder_rows_of_two_tasks_of_a_seq2seq_multitask_prompt(
    tiny_t5_path, tmp_path, perturb, capsys
):
    import json

    from probe.cli.parser import main

    _adapter("seq2seq", "MULTITASK_PROMPT_TUNING", tiny_t5_path, tmp_path / "adapter", perturb)
    folder, tasks = str(tmp_path / "adapter"), ["--task-a", "0", "--task-b", "1", "--model", str(tiny_t5_path)]
    capsys.readouterr()
    tables = {}
    for role in ("encoder", "decoder"):
        assert main(["compare", folder, folder, *tasks, "--role", role, "--format", "json"]) == 0
        tables[role] = json.loads(capsys.readouterr().out)
    a, b = (load_prompt(folder, task_id=t, role="decoder").vectors for t in (0, 1))
    cosines = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert [row["cosine"] for row in tables["decoder"]] == pytest.approx(cosines.tolist(), abs=1e-5)
    assert [row["cosine"] for row in tables["encoder"]] != [row["cosine"] for row in tables["decoder"]]


def test_peft_prompt__a_task_form_the_model_or_adapter_does_not_run_is_one_line(
    tiny_gpt2_path, tmp_path, perturb, capsys
):
    """``probe explain --task cosine|verbaliser`` with a causal model, or any --task but the one a PEFT adapter
    records, was taken as the readout's own task without a word (errors.md 194); the Python API keeps reading an
    encoder form as 'generate' on such a model (users' scripts pass one form for every model)."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from probe.cli.parser import main

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    peft_model = get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    perturb(peft_model, seed=3)
    peft_model.save_pretrained(tmp_path / "adapter")
    np.save(tmp_path / "prompt.npy", load_prompt(tmp_path / "adapter").vectors)
    model = load_model(tiny_gpt2_path, device="cpu")
    assert Readout.for_prompt(load_prompt(tmp_path / "adapter"), model, "feelings", form="cosine").form == "generate"
    capsys.readouterr()
    base_args = ["--model", str(tiny_gpt2_path), "--data", "feelings", "--test-size", "4"]
    cases = [
        (["adapter", "--task", "verbaliser"], "is read under generate (the task its PEFT CAUSAL_LM adapter was"),
        (["prompt.npy", "--task", "cosine"], "is read under generate (a causal model's one task: each label as"),
    ]
    for (target, *task), said in cases:
        assert main(["harden", str(tmp_path / target), *base_args, *task]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0] and err[0].endswith("drop --task"), err


def test_peft_prompt__a_misfit_multitask_config_is_refused_and_a_checkpoint_folder_names_its_decoder_rows(
    tiny_t5_path, tmp_path, perturb, capsys
):
    """A T5 multitask adapter of 2n rows whose config says one submodule was read (PEFT refuses it: errors.md 193);
    a folder of its checkpoints is read as a run of the encoder rows, and ``--role decoder`` there names the
    checkpoint folder to read instead (errors.md 192)."""
    import json
    import shutil

    from probe.cli.parser import main

    _adapter("seq2seq", "MULTITASK_PROMPT_TUNING", tiny_t5_path, tmp_path / "adapter", perturb)
    for step in (2, 4):
        shutil.copytree(tmp_path / "adapter", tmp_path / "run" / f"checkpoint-{step}")
    decoder = load_prompt(tmp_path / "run" / "checkpoint-4", task_id=0, role="decoder")
    assert decoder.role == "decoder" and decoder.length == 3
    with pytest.raises(ValueError, match=r"read as a run of its checkpoints.*FOLDER/checkpoint-N --role decoder"):
        load_prompt(tmp_path / "run", task_id=0, role="decoder")
    assert load_prompt(tmp_path / "run", task_id=0, role="encoder").step == 4
    config_path = tmp_path / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "num_transformer_submodules": 1}))
    with pytest.raises(ValueError, match=r"has 6 rows, but its config says num_virtual_tokens=3 x num_transformer_sub"):
        load_prompt(tmp_path / "adapter", task_id=0)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "adapter"), "--task-id", "0", "--model", str(tiny_t5_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "num_transformer_submodules=1" in err[0], err

"""P-tuning and multitask prompts on a causal and a seq2seq model: probe reads the prompt PEFT feeds the model
(P-tuning's encoder output, each task's own prompt), and its readout's per-example loss under free-text targets
equals PEFT's own forward pass with the adapter itself, one example at a time (the encoder case: a P-tuning
``SEQ_CLS`` head in tests/formats/test_peft_kinds.py). A seq2seq multitask prompt, which PEFT also puts before the
decoder's input, is refused by the readout in one line rather than scored as if it did not."""

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
    from peft import MultitaskPromptTuningConfig, PromptEncoderConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    task_type = "CAUSAL_LM" if kind == "causal" else "SEQ_2_SEQ_LM"
    config = (
        PromptEncoderConfig(task_type=task_type, num_virtual_tokens=3, encoder_hidden_size=16)
        if method == "P_TUNING"
        else MultitaskPromptTuningConfig(task_type=task_type, num_virtual_tokens=3, num_tasks=2, num_ranks=2)
    )
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
    for task in [None] if method == "P_TUNING" else [0, 1]:
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


def test_peft_prompt__a_seq2seq_multitask_prompt_is_refused_by_the_readout_and_its_rows_still_read(
    tiny_t5_path, tmp_path, perturb, capsys
):
    from probe.cli.parser import main

    model = load_model(tiny_t5_path, device="cpu")
    _adapter("seq2seq", "MULTITASK_PROMPT_TUNING", tiny_t5_path, tmp_path / "adapter", perturb)
    prompt = load_prompt(tmp_path / "adapter", task_id=1)
    data = from_rows(ROWS, source="<rows>", target_column="summary")
    with pytest.raises(ValueError, match="is a seq2seq multitask prompt: PEFT also puts 3 rows of its own before the "):
        Readout.for_prompt(prompt, model, data, target_column="summary")
    capsys.readouterr()
    args = ["report", str(tmp_path / "adapter"), "--task-id", "1", "--model", str(tiny_t5_path)]
    assert main(args) == 0 and "| 2 |" in capsys.readouterr().out  # the encoder's 3 rows, read

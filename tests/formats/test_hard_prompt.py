"""probe.formats.hard_prompt: the hard prompt is shown as its tokens, each visible, wherever a person reads it."""

from __future__ import annotations

import math

from probe.formats.hard_prompt import HardPrompt, shown_tokens

TOKENS = ["outlets", "##koff", "org", "court", "sincere", "##qi"]
TEXT = "outletskoff org court sincereqi"  # what the tokenizer decodes them to: subwords run together


def hard_prompt(tokens: list[str] = TOKENS, text: str = TEXT) -> HardPrompt:
    return HardPrompt(
        model="default", token_ids=list(range(10, 10 + len(tokens))), tokens=tokens, text=text,
        hard_prompt_accuracy=0.5, soft_accuracy=0.75, discretised_accuracy=0.5, zero_shot_accuracy=0.25,
        holdout_accuracy=0.5, start_holdout_accuracy=0.25, changed_positions=2, steps=10, best_step=5, seed=0,
    )  # fmt: skip


def test_shown_tokens__each_token_apart_with_a_visible_separator():
    assert shown_tokens(TOKENS) == "outlets · ##koff · org · court · sincere · ##qi"
    assert shown_tokens([]) == ""


def test_hard_prompt__markdown_and_headline_show_the_tokens_then_the_decoded_text():
    hard = hard_prompt()
    first = hard.to_markdown().splitlines()[0]
    assert first.endswith(
        "`outlets · ##koff · org · court · sincere · ##qi` (decoded: `outletskoff org court sincereqi`)"
    )
    assert hard.headline().startswith("outlets · ##koff · org · court · sincere · ##qi, accuracy 0.500")


def test_explain_record__markdown_shows_the_hard_prompts_tokens():
    from probe.formats.explain_record import ExplainRecord, ImportanceTable
    from probe.formats.lens_record import LayerLens

    lens = LayerLens(rows=[], input_tokens=[], holds_until=[], layers=2, texts=0)
    record = ExplainRecord("run", 10, "default", ImportanceTable(0.75, 0.5, 8, [], 10), hard_prompt(), lens)
    assert "`outlets · ##koff · org · court · sincere · ##qi`" in record.to_markdown()


def test_audit_report__each_runs_line_shows_the_hard_prompts_tokens():
    from probe.experiments.audit.record import AuditReport

    run = {
        "run": "runs/planted", "share": 0.9, "seed": 0, "flip_rate": 0.5, "flip_ci": (0.25, 0.75),
        "clean_accuracy": 0.75, "relies": True,
        "trigger_rank": 1, "attribution_rank": 2, "scan_top": ["a"], "attribution_top": ["b"],
        "hard_prompt": TEXT,
    }  # fmt: skip
    reading = {"name": "hard prompt", "detection_rate": math.nan, "false_alarm_rate": math.nan, "spearman": math.nan}
    reading |= {"found": {}, "detection_ci": [math.nan, math.nan], "false_alarm_ci": [math.nan, math.nan]}
    reading |= {"detected": "0/0", "false_alarms": "0/0"}
    new = AuditReport([{**run, "hard_prompt_tokens": TOKENS}], [reading]).to_markdown()
    assert "hard prompt `outlets · ##koff · org · court · sincere · ##qi`" in new
    old = AuditReport([run], [reading]).to_markdown()  # a report from before the tokens were kept
    assert f"hard prompt `{TEXT}`" in old

"""PEFT prompts of other kinds on the real model and real data (issue 29, "meaning on the real model"): a
``P_TUNING`` and a ``PREFIX_TUNING`` ``SEQ_CLS`` prompt on the bundled encoder, trained on AG News with the Hugging
Face ``Trainer``, then read by probe.

    python bench/peft_seq_cls.py [--data ../shared/data/ag_news.csv] [--steps 300] [--test-size 2000]

P-tuning is trained with :class:`probe.ProbeCallback`; its soft accuracy as probe's readout measures it (what
``probe explain`` reports) is compared with the accuracy of the model's own predictions on the same test rows,
then its nearest-token report, its drift table and the map's trajectories are read from the run. The prefix is
saved as Trainer checkpoints (``ProbeCallback`` refuses a prefix: its prompt is keys and values per layer); its last
checkpoint is explained as ``probe explain CHECKPOINT --data`` explains it (its soft accuracy against the model's own
predictions, importance and the per-layer nearest-token stand-in) and read per layer as ``probe report`` reads it,
beside the same reading of real tokens' keys and values.

Prints a markdown table and writes bench/peft_seq_cls.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "ag_news.csv"


def _dataset(tok, splits):
    from datasets import Dataset

    names = splits.train.label_names
    rows = Dataset.from_dict({"text": splits.train.texts, "label": [names.index(x) for x in splits.train.labels]})
    return rows.map(lambda r: tok(r["text"], truncation=True, max_length=128), batched=True)


def _train(model, splits, config, out: Path, steps: int, callback=None):
    from peft import get_peft_model
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    names = splits.train.label_names
    id2label = dict(enumerate(names))
    base = AutoModelForSequenceClassification.from_pretrained(
        model.location, num_labels=len(names), id2label=id2label, label2id={v: k for k, v in id2label.items()}
    )
    peft_model = get_peft_model(base, config)
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=steps, per_device_train_batch_size=16, learning_rate=0.005,
        save_strategy="steps" if callback is None else "no", save_steps=max(1, steps // 3), report_to=[],
        use_cpu=True, seed=0, disable_tqdm=True, logging_steps=max(1, steps // 10),
    )  # fmt: skip
    trainer = Trainer(
        model=peft_model, args=args, train_dataset=_dataset(model.tokenizer, splits), processing_class=model.tokenizer
    )
    if callback is not None:
        trainer.add_callback(callback)
    trainer.train()
    return peft_model, id2label


def _own_accuracy(peft_model, model, test, id2label) -> float:
    """The accuracy of the trained model's own predictions (PEFT's forward, its head), 64 rows at a time."""
    peft_model.eval()
    right = 0
    with torch.no_grad():
        for begin in range(0, len(test), 64):
            texts, labels = test.texts[begin : begin + 64], test.labels[begin : begin + 64]
            batch = model.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
            predicted = peft_model(**batch).logits.argmax(-1).numpy()
            right += sum(id2label[int(p)] == label for p, label in zip(predicted, labels, strict=True))
    return right / len(test)


def p_tuning(model, splits, out: Path, steps: int, data: str, test_size: int) -> list[tuple[str, str]]:
    from peft import PromptEncoderConfig

    from probe import ProbeCallback, load_run
    from probe.core.index import VocabIndex
    from probe.dashboard import views
    from probe.readings.drift import drift_table
    from probe.readings.explain.readout import Readout
    from probe.readings.projection import MapConfig, fit_map
    from probe.readings.reports import nearest_tokens

    began = time.perf_counter()
    config = PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=20, encoder_hidden_size=128)
    peft_model, id2label = _train(model, splits, config, out, steps, ProbeCallback(out / "p-tuning", every=50))
    trained = time.perf_counter() - began
    run = load_run(out / "p-tuning")
    readout = Readout.from_run(run, model, data=data, test_size=test_size)
    test = readout.splits.test
    probe_acc = float(readout.outcome(run.latest_prompt().vectors, test)[0].mean())
    own = _own_accuracy(peft_model, model, test, id2label)
    index = VocabIndex.for_model(model)
    report = nearest_tokens(run.latest_prompt(), model, index=index, k=5)
    drift = drift_table(run, model, index=index, k=5)
    vmap = fit_map(model, index, MapConfig(method="pca"), extra_ids=views.neighbour_ids([run], index))
    paths = views.trajectories(vmap, [run], index, display=model.vocabulary.display)
    top1 = [row.neighbours[0].token for row in report.positions][:8]
    return [
        ("P-tuning: steps trained (Trainer + ProbeCallback), seconds", f"{steps}, {trained:.0f} s"),
        ("P-tuning: soft accuracy, probe's readout (what `probe explain` reports)", f"{probe_acc:.4f}"),
        ("P-tuning: soft accuracy, the model's own predictions", f"{own:.4f}"),
        ("P-tuning: difference (target < 0.005)", f"{abs(probe_acc - own):.4f} on {len(test)} test rows"),
        ("P-tuning: report, first 8 positions' top-1", " · ".join(top1)),
        ("P-tuning: drift table rows (snapshots x positions)", f"{len(drift)} ({len(run.steps)} snapshots)"),
        ("P-tuning: map trajectories (PCA map) rows", str(len(paths))),
    ]


def prefix(model, splits, out: Path, steps: int, data: str, test_size: int) -> list[tuple[str, str]]:
    from peft import PrefixTuningConfig

    from probe.formats.prefix import load_prefix
    from probe.readings.explain import Readout, explain
    from probe.readings.prefix import prefix_layers

    began = time.perf_counter()
    config = PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=10)
    try:
        peft_model, id2label = _train(model, splits, config, out / "prefix", steps)
    except Exception as e:  # PEFT's SEQ_CLS prefix forward, on some transformers versions
        return [("PREFIX_TUNING SEQ_CLS: PEFT's own training", f"fails in PEFT: {type(e).__name__}: {str(e)[:160]}")]
    trained = time.perf_counter() - began
    checkpoint = sorted((out / "prefix" / "checkpoints").glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))
    loaded = load_prefix(checkpoint[-1])
    readout = Readout.for_prompt(loaded, model, data, test_size=test_size)  # as `probe explain CHECKPOINT --data`
    test = readout.splits.test
    own = _own_accuracy(peft_model, model, test, id2label)
    began = time.perf_counter()
    record = explain(loaded, readout, bootstrap=200)
    explained = time.perf_counter() - began
    top = min(record.importance.positions, key=lambda p: p.rank)
    began = time.perf_counter()
    report = prefix_layers(loaded, model, k=5)
    read = time.perf_counter() - began
    rows_drift, rows_map = _prefix_drift_and_map(model, checkpoint)
    rows = [
        ("prefix: steps trained (Trainer, checkpoints), seconds", f"{steps}, {trained:.0f} s"),
        ("prefix: soft accuracy, probe's readout (`probe explain CHECKPOINT --data`)", f"{record.soft_accuracy:.4f}"),
        ("prefix: accuracy, the model's own predictions", f"{own:.4f} on {len(test)} test rows"),
        ("prefix: difference (target < 0.005)", f"{abs(record.soft_accuracy - own):.4f}"),
        (
            "prefix: explain: zero-shot; every layer's keys and values as their nearest real tokens' (discretised)",
            f"{record.zero_shot_accuracy:.4f}; {record.discretised_accuracy:.4f}",
        ),
        (
            "prefix: explain: most important position (accuracy drop removed / as nearest tokens / as the mean)",
            f"{top.position} ({top.nearest_token}): {top.removed_drop:+.4f} / {top.nearest_drop:+.4f} / "
            f"{top.mean_drop:+.4f}",
        ),
        ("prefix: explain (importance and faithfulness), seconds", f"{explained:.0f} s"),
        ("prefix: per-layer reading of the last checkpoint (all layers, keys and values), seconds", f"{read:.0f} s"),
    ]
    rows += rows_drift + rows_map
    for layer in report.layers:
        rows.append(
            (
                f"prefix layer {layer.layer} {layer.part}s: mean top-1 cosine, prefix vs real tokens in text (control)",
                f"{layer.summary.mean_top1_cosine:.3f} vs {layer.control.mean_top1_cosine:.3f}; on-manifold "
                f"{layer.summary.on_manifold_share:.2f} vs {layer.control.on_manifold_share:.2f}; control finds "
                f"itself {layer.control_found_itself:.2f}",
            )
        )
    return rows


def _prefix_drift_and_map(model, checkpoints: list[Path]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The prefix's drift per layer over its checkpoints (as `probe drift FOLDER` reads it) and the map of its last
    layer's keys (as the dashboard's Map page draws it: UMAP, every checkpoint placed)."""
    from probe.dashboard.prefixes import PrefixRun, layer_paths
    from probe.formats.prefix import load_prefix
    from probe.readings.prefix_drift import prefix_drift
    from probe.readings.prefix_map import prefix_map

    began = time.perf_counter()
    drift = prefix_drift({int(c.name.split("-")[1]): load_prefix(c) for c in checkpoints}, model).to_dataframe()
    drifted = time.perf_counter() - began
    last = drift[drift["step"] == drift["step"].max()]
    layer = int(drift["layer"].max())
    began = time.perf_counter()
    vmap, index = prefix_map(model, layer, "key")
    fitted = time.perf_counter() - began
    began = time.perf_counter()
    prefix_map(model, layer, "key")  # read back from the cache
    cached = time.perf_counter() - began
    paths = layer_paths(PrefixRun(checkpoints[0].parent), model, vmap, index, layer=layer, part="key")
    final = paths[paths["step"] == paths["step"].max()]
    return [
        (
            "prefix: drift per layer over its checkpoints (`probe drift FOLDER`), rows, seconds",
            f"{len(drift)} rows ({drift['step'].nunique()} checkpoints x {drift['layer'].nunique()} layers x key, "
            f"value), {drifted:.0f} s",
        ),
        (
            "prefix: mean cosine to the first checkpoint at the last, per layer (keys)",
            " · ".join(f"{r.layer}: {r.mean_cos_to_first:.3f}" for r in last[last["part"] == "key"].itertuples()),
        ),
    ], [
        (
            f"prefix: map of layer {layer}'s keys (UMAP, Map page): fit, cached read, seconds",
            f"{len(vmap.token_ids):,} tokens, trustworthiness {vmap.trustworthiness:.2f}, fit {fitted:.0f} s, "
            f"cached {cached:.1f} s",
        ),
        (
            f"prefix: map of layer {layer}'s keys: placed (checkpoints x positions); on-manifold at the last",
            f"{len(paths)}; {int(final['on_manifold'].sum())} of {len(final)}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--test-size", type=int, default=2000)
    args = parser.parse_args()
    from probe import load_model
    from probe.core.data import train_test

    model = load_model("default")
    splits = train_test(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        rows = p_tuning(model, splits, Path(tmp), args.steps, args.data, args.test_size)
        rows += prefix(model, splits, Path(tmp), args.steps, args.data, args.test_size)
    text = "\n".join(
        [
            f"PEFT SEQ_CLS prompts on the bundled encoder, {Path(args.data).name}, 2 CPU cores "
            f"(`python bench/peft_seq_cls.py --data {args.data} --steps {args.steps} --test-size {args.test_size}`):",
            "",
            "| what | value |",
            "|---|---|",
            *[f"| {name} | {value} |" for name, value in rows],
        ]
    )
    (HERE / "peft_seq_cls.md").write_text("# PEFT prompts of other kinds on AG News\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

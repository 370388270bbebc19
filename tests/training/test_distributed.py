"""Data-parallel training under ``accelerate launch`` with 2 CPU processes: rank 0 writes, prompts stay in sync.

On a machine without GPUs, ``accelerate launch --multi_gpu`` starts torch.distributed's launcher and the process
group uses gloo on the CPU (``--cpu`` alone would start a single process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from probe import load_run

SCRIPT = """
import os, sys
import numpy as np
from probe.core.data import DataSplits, LabelledData
from probe.training.config import TrainConfig
from probe.training.trainer import train
texts = ["the team won the match", "the match was a draw", "rates rose at the bank", "shares fell at the bank",
         "the team lost the match", "the bank cut rates"] * 2
labels = ["sports", "sports", "money", "money", "sports", "money"] * 2
data = LabelledData(texts, labels, ["sports", "money"])
config = TrainConfig(model=sys.argv[1], init="sampled-vocab", length=4, steps=12, batch_size=6, lr=0.1,
                     snapshot_every=4, eval_every=6, vocab_top_n=100)
final = {}
run = train(config, sys.argv[2], splits=DataSplits(data, data), progress=False,
            callbacks=[lambda r: final.update(w=r.prompt.detach().clone().numpy())])
np.save(os.path.join(sys.argv[3], f"rank{os.environ.get('RANK', '0')}.npy"), final["w"])
with open(os.path.join(sys.argv[3], f"rank{os.environ.get('RANK', '0')}.txt"), "w") as f:
    f.write(f"returned {run is not None}")
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
def test_accelerate__two_cpu_processes(tiny_gpt2_path, tmp_path):
    script = tmp_path / "dp.py"
    script.write_text(SCRIPT)
    side = tmp_path / "side"
    side.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(
        [
            "accelerate",
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            str(script),
            str(tiny_gpt2_path),
            str(tmp_path / "dp-run"),
            str(side),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert (side / "rank0.txt").read_text() == "returned True"  # rank 0 owns the run
    assert (side / "rank1.txt").read_text() == "returned False"
    run = load_run(tmp_path / "dp-run")
    assert run.status == "finished" and run.steps == [0, 4, 8, 12]
    rank0, rank1 = np.load(side / "rank0.npy"), np.load(side / "rank1.npy")
    np.testing.assert_array_equal(rank0, rank1)  # gradients averaged: both ranks hold the same prompt
    np.testing.assert_array_equal(run.latest_prompt().vectors, rank0)

    single = subprocess.run(
        [sys.executable, str(script), str(tiny_gpt2_path), str(tmp_path / "one"), str(side)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    # the same global batch split over two ranks gives the single-process result (up to float rounding)
    np.testing.assert_allclose(load_run(tmp_path / "one").latest_prompt().vectors, rank0, atol=1e-4)

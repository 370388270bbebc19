"""Shared fixtures: the real default model, and tiny random GPT-2 / T5 / BERT models built offline.

No causal or seq2seq model is available offline, so tiny ones are built from configs (hidden 32, 2 layers)
with tokenizers trained here on a small corpus. Their sizes are asserted: a misspelled config field is
silently ignored by transformers, and would otherwise give a much larger model.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers share the cores: one thread each, for its children too
    os.environ.setdefault("PROBE_THREADS", "1")

import tempfile

import torch
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

# nothing of hypothesis's in the checkout (.hypothesis/): no example database, its caches in a temp folder
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="probe-hypothesis-"))
settings.register_profile("probe", database=None)
settings.load_profile("probe")

if os.environ.get("PYTEST_XDIST_WORKER"):
    from probe.core.threads import configure_threads

    configure_threads(int(os.environ["PROBE_THREADS"]))

# The heaviest modules first (each trains its own runs in a module fixture). Under `--dist loadscope` each module
# goes whole to the next free worker in collection order, so the longest ones start first and the short ones fill
# in at the end (longest-processing-time-first); in the default alphabetical order two of the longest came last.
HEAVY_FIRST = (
    "tests/experiments/test_audit.py",
    "tests/test_reliability.py",
    "tests/dashboard/test_browser.py",
    "tests/experiments/test_replicate.py",
    "tests/test_readme.py",
    "tests/training/test_training.py",
    "tests/experiments/test_frontier.py",
    "tests/readings/test_explain.py",
    "tests/cli/test_cli.py",
    "tests/training/test_integrations.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the modules heaviest first (:data:`HEAVY_FIRST`), the rest as collected; tests in a module stay in
    order."""
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}
    position = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank.get(item.nodeid.split("::")[0], len(rank)), position[id(item)]))


CORPUS = [
    "The team won the match after a late goal in the final minute.",
    "Scientists measured the spin of the particle with a new detector.",
    "The central bank raised interest rates to slow inflation.",
    "Parliament passed the bill after a long debate on the budget.",
    "A new phone chip doubles battery life and speeds up graphics.",
    "The striker signed a contract with the club for three seasons.",
    "Researchers found water ice in a crater near the lunar pole.",
    "Shares fell sharply as investors worried about the trade deficit.",
    "Voters went to the polls to elect a new mayor on Sunday.",
    "The software update fixes a security flaw in the browser.",
] * 3


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Every test session gets its own probe cache, so tests never read a cache from another run."""
    before = os.environ.get("PROBE_CACHE_DIR")
    os.environ["PROBE_CACHE_DIR"] = str(tmp_path_factory.mktemp("probe-cache"))
    yield
    if before is None:
        os.environ.pop("PROBE_CACHE_DIR", None)
    else:
        os.environ["PROBE_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def default_model():
    """The real bundled all-MiniLM-L6-v2, loaded once."""
    from probe import load_model

    return load_model("default", device="cpu")


@pytest.fixture(scope="session")
def default_index(default_model):
    from probe import VocabIndex

    return VocabIndex.for_model(default_model)


def _bpe_tokenizer(tmp: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(CORPUS, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok._tokenizer,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


def _unigram_tokenizer():
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import PreTrainedTokenizerFast

    tok = SentencePieceUnigramTokenizer()
    tok.train_from_iterator(CORPUS, vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok._tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _perturb(module: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.5)


@pytest.fixture(scope="session")
def perturb():
    """Move a PEFT model's trainable parameters off their init (seeded), so a reading of them is not the trivial
    one: ``perturb(peft_model, seed=0)``."""
    return _perturb


@pytest.fixture(scope="session")
def tiny_gpt2_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 with hidden size 32 and a 400-token byte-level BPE, saved to a folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = _bpe_tokenizer(path)
    config = GPT2Config(
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng():  # seeded weights, the process's generator untouched
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    assert model.config.n_embd == 32 and len(model.transformer.h) == 2
    assert _count(model) < 60_000, _count(model)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_t5_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer T5 (d_model 32) whose embedding matrix is padded 28 rows past its 300-token tokenizer."""
    from transformers import T5Config, T5ForConditionalGeneration

    path = tmp_path_factory.mktemp("tiny-t5")
    tokenizer = _unigram_tokenizer()
    config = T5Config(
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        vocab_size=len(tokenizer) + 28,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():  # seeded weights, the process's generator untouched
        torch.manual_seed(0)
        model = T5ForConditionalGeneration(config)
    assert model.config.d_model == 32 and len(model.encoder.block) == 2 and len(model.decoder.block) == 2
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) + 28
    assert _count(model) < 120_000, _count(model)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT (hidden 32) with the default model's WordPiece tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from probe.core.models import bundled_model_path

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
    )
    with torch.random.fork_rng():  # seeded weights, the process's generator untouched
        torch.manual_seed(0)
        model = BertModel(config)
    assert model.config.hidden_size == 32 and len(model.encoder.layer) == 2
    assert _count(model) < 1_100_000, _count(model)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory, default_model) -> Path:
    """The three demo runs, short (10 steps, 5 positions), trained once per test session."""
    from dataclasses import replace

    from probe.experiments.demo import demo_configs, ensure_runs
    from probe.training.config import TrainConfig

    out = tmp_path_factory.mktemp("demo-runs")
    base = replace(TrainConfig(), steps=10, length=5)
    ensure_runs(out, demo_configs(base), model=default_model, progress=False)
    return out

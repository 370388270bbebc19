"""The context every reading of what a prompt does shares: the model, its index, the task and the data.

The task of a reading is the task of the prompt: a probe run's task form (from its manifest), a PEFT adapter's
``task_type`` (``SEQ_CLS`` with its trained head, ``CAUSAL_LM`` and ``SEQ_2_SEQ_LM`` scoring the label words as
continuations, ``FEATURE_EXTRACTION`` with the cosine form), or the caller's own scoring function, loss
(objective ``user-loss``) or ``Task`` class. When it cannot be known, a one-line error lists the choices; nothing
falls back to a default silently.

:class:`Readout` runs a prompt's vectors through that task in one batched pass (:meth:`Readout.outcome`). The
readings themselves are in :mod:`.ablation`, :mod:`.hardening` and :mod:`.lens`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from probe.core.data import DataSplits, LabelledData
from probe.core.frames import Data, as_splits, data_name
from probe.core.index import VocabIndex
from probe.core.io import expect
from probe.core.models import LoadedModel, load_model
from probe.core.names import CLASSIFICATION, TARGET_LIKELIHOOD, USER_LOSS
from probe.core.softprompt import SoftPrompt, as_prompt, check_vectors
from probe.core.tokens import text_list
from probe.formats.files import PEFT_FORMS, recorded_task_type
from probe.formats.prefix import PrefixPrompt
from probe.formats.prompts import decoder_rows
from probe.formats.run import Run
from probe.tasks import user as user_tasks
from probe.tasks.base import prefix_width
from probe.tasks.evaluation import eval_subset, zero_shot_accuracy
from probe.tasks.forms import READING_FORMS, unknown_task
from probe.tasks.kinds import Task, make_task, prompt_parameter, wrap_with_prompt
from probe.tasks.target import make_target_task
from probe.tasks.user import ClassifierHead, ClassifierHeadTask, LossTask, Score, ScoringTask, UserLoss

logger = logging.getLogger(__name__)


@dataclass
class Readout:
    """The model, its vocabulary index, the task and the data that every reading uses.

    Attributes:
        model: the model the prompt belongs to.
        index: its vocabulary index.
        labels: the class labels.
        splits: train and test data (accuracies are on the test split). Data with free-text targets
            (``target_texts``) is read under the target objective (:mod:`probe.tasks.target`), any other as
            classification: :attr:`objective`.
        max_length / temperature: the task's settings, as in training.
        form: the task form (:data:`READING_FORMS`): the one the prompt was trained under.
        score: the caller's scoring function (form "custom").
        loss: the caller's loss, ``loss(model, batch) -> float [B]`` (form "custom", objective "user-loss";
            :class:`probe.tasks.user.LossTask` says what the model and the batch are).
        task_class: the caller's :class:`Task` subclass (form "custom").
        head: a ``SEQ_CLS`` adapter's trained head (form "classifier-head").
        decoder_prompt: a seq2seq multitask prompt's decoder rows, held as learned (put before the decoder's input).
        cache_key: for a caller's ``score`` or ``task``: a name stable across processes, so that the frozen model's
            side of its readings is cached on disk (without one: for this function object only).
    """

    model: LoadedModel
    index: VocabIndex
    labels: list[str]
    splits: DataSplits
    max_length: int = 128
    temperature: float = 0.05
    form: str = "cosine"
    score: Score | None = None
    task_class: type[Task] | None = None
    head: ClassifierHead | None = None
    loss: UserLoss | None = None
    cache_key: str | None = None
    decoder_prompt: np.ndarray | None = None
    _tasks: dict[tuple[int, int], Task] = field(default_factory=dict, repr=False)
    _head_model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.labels = text_list(self.labels, "labels")
        given = [name for name in ("score", "task_class", "loss") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(
                f"Readout was given {' and '.join(given)}; expected one way to measure the prompt: a scoring "
                "function (score=), a loss (loss=) or a Task class (task=)"
            )
        if given:
            self.form = "custom"
        elif self.head is not None:
            self.form = "classifier-head"
        if self.form not in READING_FORMS:
            raise ValueError(f"task form {self.form!r} is not known; expected one of {', '.join(READING_FORMS)}")
        generative = self.model.kind in ("causal", "seq2seq")
        if self.objective == TARGET_LIKELIHOOD and not generative:
            raise ValueError(
                f"free-text targets need a model that generates text; {self.model.name} is a model of kind "
                f"'{self.model.kind}', which generates none. Use a causal or seq2seq model, or read this data as "
                "classification (--label-column instead of --target-column)"
            )
        if self.form == "generate" and not generative:
            raise ValueError(f"task form 'generate' is for causal and seq2seq models; {self.model.name} is an encoder")
        if generative and self.form in ("cosine", "verbaliser"):
            self.form = "generate"  # probe's one form for these models: the label as a continuation
        if self.decoder_prompt is not None and (self.form != "generate" or self.model.kind != "seq2seq"):
            raise ValueError(  # errors.md 185
                f"a seq2seq multitask prompt's decoder rows are put before the decoder's input by probe's own seq2seq "
                f"tasks; this readout is {self.model.kind} with task {self.task_name}: drop --loss (score=/loss=/task=)"
            )
        if self.head is not None and self.head.classes != len(self.labels):
            raise ValueError(
                f"the classifier head has {self.head.classes} classes but the data has {len(self.labels)} labels "
                f"{self.labels}; give the data it was trained on (its classes in the order of the head)"
            )

    def __repr__(self) -> str:
        return (
            f"Readout({self.model.name!r}, task {self.form}, {len(self.labels)} labels, "
            f"{len(self.splits.train)} train / {len(self.splits.test)} test rows)"
        )

    @property
    def objective(self) -> str:
        """What every reading of this readout measures (:data:`probe.core.names.OBJECTIVES`): the target objective
        when the data has free-text targets, else classification."""
        if self.loss is not None:
            return USER_LOSS
        return CLASSIFICATION if self.splits.test.target_texts is None else TARGET_LIKELIHOOD

    @property
    def task_name(self) -> str:
        """The task every result of this readout is measured under (its form; a custom one by its function)."""
        if self.form == "custom":
            fn = self.score or self.task_class or self.loss
            return f"custom:{getattr(fn, '__qualname__', type(fn).__name__)}"
        name = "target" if self.objective == TARGET_LIKELIHOOD and self.form == "generate" else self.form
        return f"{name}+decoder-rows" if self.decoder_prompt is not None else name

    @property
    def identity(self) -> str:
        """What tells this readout's scores apart beyond its model, labels and form: the head's digest, or the
        caller's function (its ``cache_key``, else this very object: never shared with another function)."""
        if self.head is not None:
            return f"head:{self.head.digest()}"
        if self.decoder_prompt is not None:
            return f"decoder:{hashlib.sha256(np.asarray(self.decoder_prompt, np.float32).tobytes()).hexdigest()}"
        fn = self.score or self.task_class or self.loss
        if fn is None:
            return ""
        name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
        return f"key:{self.cache_key}" if self.cache_key else f"object:{name}:{os.getpid()}:{id(fn)}"

    # -- construction -----------------------------------------------------------------------------------------

    @classmethod
    def from_run(
        cls,
        run: Run,
        model: LoadedModel | None = None,
        *,
        data: Data | None = None,
        data_changed_ok: bool = False,
        test_size: int | None = None,
    ) -> Readout:
        """The readout a probe run was trained with: its model, data, split, labels, task form and settings, and
        the test rows its final figures were measured on (``test_size`` narrows them further).

        Raises:
            ValueError: the run records no data and none is given; its data changed since (unless
                ``data_changed_ok``); or it is another tool's run (use :meth:`for_prompt` with its data).
        """
        expect(model, (LoadedModel, type(None)), "model", "a loaded model (probe.load_model(...)) or None")
        config = run.manifest.config or {}
        if not config.get("data") and data is None:
            raise ValueError(f"run '{run.path}' records no training data; give the data (probe explain --data FILE)")
        if run.manifest.task_form == "classifier-head":
            return cls._with_head(run, model, data, test_size)
        seed = int(config.get("seed", 0))
        columns = {
            "text_column": config.get("text_column", "text"),
            "label_column": config.get("label_column", "label"),
            "target_column": config.get("target_column"),
        }
        splits = as_splits(data if data is not None else run.data_source(), seed=seed, **columns)
        if run.manifest.data is not None:
            given = None if data is None else data_name(data)
            run.manifest.data.check(splits.train.sha256, allow_changed=data_changed_ok, run=str(run.path), given=given)
        rows = test_size or config.get("test_size")
        if rows:
            splits = replace(splits, test=eval_subset(splits.test, int(rows), seed))
        model = model or load_model(run.manifest.model or "default")
        form = config.get("task", run.manifest.task_form or "cosine")
        return cls(
            model=model,
            index=VocabIndex.for_model(model),
            labels=splits.train.label_names,
            splits=splits,
            max_length=int(config.get("max_length", 128)),
            temperature=float(config.get("temperature", 0.05)),
            form=form,
        )

    @classmethod
    def _with_head(cls, run: Run, model: LoadedModel | None, data: Data, test_size: int | None) -> Readout:
        """A recorded ``SEQ_CLS`` run read under its own head (:meth:`ClassifierHead.of_run`)."""
        head, splits = ClassifierHead.of_run(run, data, test_size)
        model = model or load_model(run.manifest.model or "default")
        return cls(model, VocabIndex.for_model(model), splits.train.label_names, splits, head=head)

    @classmethod
    def from_data(
        cls,
        model: LoadedModel,
        data: Data,
        *,
        seed: int = 0,
        form: str | None = None,
        score: Score | None = None,
        task: type[Task] | None = None,
        loss: UserLoss | None = None,
        text_column: str = "text",
        label_column: str = "label",
        test_size: int | None = None,
        target_column: str | None = None,
    ) -> Readout:
        """A readout for a prompt of ``model`` on labelled data (a file, a DataFrame, a ``datasets`` Dataset or
        DatasetDict), under the task given: a ``form``, the caller's ``score`` function, or a ``task`` class; or,
        with ``target_column``, under the target objective (each row's free-text target, causal and seq2seq).

        Raises:
            ValueError: no task given (a one-line error that lists the choices).
        """
        expect(model, LoadedModel, "model", "a loaded model (probe.load_model(...))")
        if form is None and score is None and task is None and loss is None and target_column is None:
            raise unknown_task(f"a prompt read on '{getattr(data, 'name', None) or type(data).__name__}'")
        columns: dict[str, Any] = {"text_column": text_column, "label_column": label_column}
        splits = as_splits(data, seed=seed, target_column=target_column, **columns)
        if test_size:
            splits = replace(splits, test=eval_subset(splits.test, test_size, seed))
        labels = splits.train.label_names
        index = VocabIndex.for_model(model)
        return cls(model, index, labels, splits, form=form or "cosine", score=score, task_class=task, loss=loss)

    @classmethod
    def for_prompt(cls, prompt: SoftPrompt, model: LoadedModel, data: Data, **options: Any) -> Readout:
        """The readout of a loaded prompt under the task it was trained on: a PEFT adapter's ``task_type``
        (``SEQ_CLS`` with its head), else the ``form``, ``score`` or ``task`` given in ``options`` (see
        :meth:`from_data`).

        Raises:
            ValueError: the task cannot be known (a tensor file records none), an adapter's task type probe
                cannot read without a scoring function, or a seq2seq multitask prompt's decoder half (errors.md 185).
        """
        expect(model, LoadedModel, "model", "a loaded model (probe.load_model(...))")
        task_type, decoder = recorded_task_type(prompt), decoder_rows(prompt, model.kind)
        given = any(options.get(k) is not None for k in ("form", "score", "task", "loss", "target_column"))
        if task_type is None or given:
            if not given:
                raise unknown_task(f"prompt '{prompt.source}' (it records no task type)")
            return replace(cls.from_data(model, data, **options), decoder_prompt=decoder)
        if task_type not in PEFT_FORMS:
            raise ValueError(
                f"prompt '{prompt.source}' is a PEFT {task_type} adapter; probe reads {', '.join(PEFT_FORMS)} "
                "adapters by their task type, and any other with score= or task= given to Readout"
            )
        readout = cls.from_data(model, data, form="cosine", **{k: v for k, v in options.items() if k != "form"})
        if PEFT_FORMS[task_type] == "classifier-head":
            return replace(readout, head=ClassifierHead.from_adapter(prompt.source), _tasks={})
        return replace(readout, form=PEFT_FORMS[task_type], decoder_prompt=decoder, _tasks={})

    # -- the task -------------------------------------------------------------------------------------------

    def task(self, length: int, width: int | None = None) -> Task:
        """The task with a PEFT wrapper holding a prompt of ``length`` positions (one per length and width, reused):
        input rows (``width`` the model's dim, the default) or a flat prefix (:func:`probe.tasks.base.prefix_width`).
        """
        key = (length, width or self.model.dim)
        if key not in self._tasks:
            vectors = np.zeros(key, np.float32)
            settings: dict[str, Any] = {"max_length": self.max_length, "temperature": self.temperature}
            settings["identity"] = self.identity
            if self.loss is not None:
                peft = wrap_with_prompt(self.model, vectors)
                self._tasks[key] = LossTask(self.model, peft, self.labels, **settings, loss_fn=self.loss)
            elif self.objective == TARGET_LIKELIHOOD and self.score is None and self.task_class is None:
                peft = wrap_with_prompt(self.model, vectors)
                self._tasks[key] = make_target_task(self.model, peft, max_length=self.max_length)
            elif self.head is not None:
                if self._head_model is None:
                    self._head_model = self.head.model(self.model)
                peft = user_tasks.wrap_head_with_prompt(self._head_model, self.model, vectors)
                self._tasks[key] = ClassifierHeadTask(self.model, peft, self.labels, **settings)
            elif self.score is not None:
                peft = wrap_with_prompt(self.model, vectors)
                self._tasks[key] = ScoringTask(self.model, peft, self.labels, **settings, score=self.score)
            elif self.task_class is not None:
                peft = wrap_with_prompt(self.model, vectors)
                self._tasks[key] = self.task_class(self.model, peft, self.labels, **settings)
            else:
                form = self.form if self.form in ("cosine", "verbaliser") else "cosine"
                peft = wrap_with_prompt(self.model, vectors)
                settings.pop("identity")  # probe's own forms: the model, labels and form say everything
                self._tasks[key] = make_task(self.model, peft, self.labels, **settings, form=form)
            if self.decoder_prompt is not None:  # held in every pass, the frozen model's too: part of every key
                self._tasks[key].decoder_prompt, self._tasks[key].identity = self.decoder_prompt, self.identity
        return self._tasks[key]

    def prompt_of(self, prompt: Any) -> SoftPrompt:
        """``prompt`` as a :class:`SoftPrompt` (:func:`probe.core.softprompt.as_prompt`), once it is known to be run as
        it was trained: a seq2seq multitask prompt with its own decoder rows (:attr:`decoder_prompt`).

        Raises:
            ValueError: such a prompt whose decoder rows this readout does not hold (errors.md 185).
        """
        prompt = as_prompt(prompt)
        held = decoder_rows(prompt, self.model.kind)  # re-read from the adapter, for a seq2seq multitask prompt only
        if held is not None and (self.decoder_prompt is None or not np.array_equal(held, self.decoder_prompt)):
            raise ValueError(
                f"prompt '{prompt.source}' (task {prompt.metadata.get('task_id')}) is a seq2seq multitask prompt whose "
                "decoder rows this readout does not hold; build it for this prompt: Readout.for_prompt(prompt, ...)"
            )
        return prompt

    def key(self) -> dict[str, Any]:
        """Everything a reading's result depends on besides the prompt: the model, the task, the data (for cache
        keys, such as the hard-prompt search's resumable state)."""
        digest = hashlib.sha256()
        for split in (self.splits.train, self.splits.test):
            for text, label in zip(split.texts, split.labels, strict=True):
                digest.update(text.encode("utf-8") + b"\x00" + label.encode("utf-8") + b"\x01")
            for target in split.target_texts or []:
                digest.update(target.encode("utf-8") + b"\x03")
            digest.update(b"\x02")
        objective = {} if self.objective == CLASSIFICATION else {"objective": self.objective}  # old keys unchanged
        return {
            **objective,
            "model": self.model.fingerprint,
            "task": self.task_name,
            "identity": self.identity,
            "labels": list(self.labels),
            "max_length": self.max_length,
            "temperature": self.temperature,
            "data_sha256": digest.hexdigest(),
        }

    def scores(self, vectors: np.ndarray, data: LabelledData) -> np.ndarray:
        """float [N, L]: the label scores of every example with the prompt set to ``vectors`` (one batched pass)."""
        return self.set_prompt(vectors).score_all(data.texts)

    def set_prompt(self, vectors: np.ndarray) -> Task:
        """The task of ``vectors``' length, with its prompt set to them (float32 [p, d]).

        Raises:
            ValueError: vectors of another dimension than the model's.
        """
        vectors = check_vectors(vectors.flat() if isinstance(vectors, PrefixPrompt) else vectors)
        if vectors.shape[1] not in (self.model.dim, prefix_width(self.model)):
            raise ValueError(
                f"prompt has dim {vectors.shape[1]}, model '{self.model.name}' has dim {self.model.dim}; "
                "load the model the prompt was trained on"
            )
        task = self.task(vectors.shape[0], vectors.shape[1])
        weight = prompt_parameter(task.peft_model)
        with torch.no_grad():
            weight.copy_(torch.from_numpy(vectors).to(weight.device, weight.dtype))
        return task

    def outcome(self, vectors: np.ndarray, data: LabelledData) -> tuple[np.ndarray, np.ndarray]:
        """(correct [N], loss [N]) of every example with the prompt set to ``vectors`` (:meth:`Task.outcome`): for
        classification, 0/1 and the cross-entropy over the label scores; for the target objective, the share of
        target tokens that are the next-token argmax and the mean negative log-likelihood of the target."""
        return self.set_prompt(vectors).outcome(data)

    def nearest_ids(self, vectors: np.ndarray) -> np.ndarray:
        """int64 [p]: each row's nearest searchable token by cosine."""
        return self.index.search(vectors, 1)[1][:, 0]

    def zero_shot(self) -> float:
        """The frozen model's accuracy on the test split (cached; the target objective: its token accuracy)."""
        test = self.splits.test
        if self.objective != CLASSIFICATION:
            return float(self.task(1).outcome(test, prompt=False)[0].mean())
        return zero_shot_accuracy(self.task(1), test.texts, test.targets)


def prompt_of(readout: Any, prompt: Any) -> SoftPrompt:
    """:meth:`Readout.prompt_of` where a reading takes its arguments: ``readout`` checked to be one first (a model,
    or the two arguments swapped, failed deep inside with an AttributeError)."""
    expect(
        readout, Readout, "readout", "a Readout (Readout.from_run(run, model), Readout.for_prompt(prompt, model, data))"
    )
    return readout.prompt_of(prompt)

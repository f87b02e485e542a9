"""``evaluate()``: one model, one data set, one task (zero-shot classification, retrieval or a linear probe)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from clip_core.embedding.job import Skipped
from clip_core.errors import InputError
from clip_core.eval.data import EvalData, format_template, load_data
from clip_core.eval.features import image_features, text_features
from clip_core.eval.linear_probe import ProbeSettings, linear_probe
from clip_core.eval.metrics import classification_metrics, confusion_matrix, retrieval_metrics
from clip_core.eval.result import EvalResult
from clip_core.fingerprint import model_fingerprint
from clip_core.model import ClipModel
from clip_core.preprocess import ImagePreprocess, get_preprocess
from clip_core.protocols import Tokenizer
from clip_core.tokenizer import get_tokenizer
from clip_core.zeroshot import zero_shot_classifier

__all__ = ["TASKS", "Task", "evaluate", "resolve_task"]

Task = Literal["zeroshot_classification", "zeroshot_retrieval", "linear_probe"]
#: The tasks, by CLIP_benchmark's names.
TASKS: tuple[Task, ...] = ("zeroshot_classification", "zeroshot_retrieval", "linear_probe")
_CURVE_LENGTH = 50


def evaluate(
    model: ClipModel,
    data: EvalData | str | os.PathLike[str],
    task: Task | None = None,
    *,
    split: str = "test",
    train: EvalData | str | None = "train",
    val: EvalData | str | None = None,
    classnames: str | os.PathLike[str] | None = None,
    templates: str | os.PathLike[str] | None = None,
    recall_k: Sequence[int] = (1, 5, 10),
    batch_size: int = 64,
    workers: int = 0,
    preprocess: ImagePreprocess | None = None,
    tokenizer: Tokenizer | None = None,
    probe: ProbeSettings | None = None,
    pretrained: str | None = None,
    fingerprint: str | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate ``model`` on ``data`` (an :class:`EvalData` or a path :func:`~clip_core.eval.load_data` reads).

    ``task`` defaults to the data's kind: ``"zeroshot_classification"`` for classes, ``"zeroshot_retrieval"`` for
    captions; ``"linear_probe"`` trains a probe on the ``train`` split (a split name of the same data set, or an
    :class:`EvalData`), choosing its weight decay on ``val`` if given, and scores it on ``data``. ``classnames``
    and ``templates`` are files overriding the data set's (when ``data`` is a path). Images are embedded
    ``batch_size`` at a time with ``workers`` decoding processes, by the card's ``preprocess`` and ``tokenizer``
    unless given, on the model's device in its dtype; the model is put in eval mode. ``pretrained`` (where the
    weights came from) and ``fingerprint`` (computed here unless given) are recorded in the result.
    """
    started = time.perf_counter()
    test = _load(data, split, classnames, templates)
    task = resolve_task(test, task)
    if task == "linear_probe":  # read before any image is embedded, so a missing split fails at once
        train_set = _load(train if train is not None else "train", None, classnames, templates, data)
        val_set = _load(val, None, classnames, templates, data) if val is not None else None
    for k in recall_k:
        if k < 1:
            raise InputError(f"recall@k needs k of at least 1, got {k}")
    fingerprint = fingerprint or model_fingerprint(model)
    model.eval()
    pixels = preprocess or get_preprocess(model.card)
    tokenize = tokenizer or get_tokenizer(model.card)

    embed_seconds = 0.0

    def features(of: EvalData) -> tuple[torch.Tensor, list[int], list[Skipped]]:
        nonlocal embed_seconds
        began = time.perf_counter()
        out = image_features(model, of.images, pixels, batch_size=batch_size, workers=workers, progress=progress)
        embed_seconds += time.perf_counter() - began
        return out

    images, kept, skipped = features(test)
    if not kept:
        raise InputError(f"data set {test.name!r}: none of its {len(test.images)} images could be read")
    texts = 0
    confusion: list[list[int]] = []
    curves: dict[str, list[float]] = {}
    if task == "zeroshot_classification":
        prompts = [functools.partial(format_template, t) for t in test.templates]
        classifier = zero_shot_classifier(model, tokenize, test.classnames, prompts)
        logits = 100.0 * images @ classifier.cpu().T
        targets = torch.tensor([test.labels[i] for i in kept])
        metrics = classification_metrics(logits, targets)
        confusion = confusion_matrix(logits.argmax(dim=1), targets, len(test.classnames)).tolist()
    elif task == "zeroshot_retrieval":
        captions = [text for i in kept for text in test.captions[i]]
        owner = [row for row, i in enumerate(kept) for _ in test.captions[i]]
        texts = len(captions)
        caption_features = text_features(model, tokenize, captions)
        metrics = retrieval_metrics(images, caption_features, owner, recall_k)
        longest = min(_CURVE_LENGTH, len(kept), texts)
        curve = retrieval_metrics(images, caption_features, owner, range(1, longest + 1))
        for way in ("image_retrieval", "text_retrieval"):
            curves[way] = [curve[f"{way}_recall@{k}"] for k in range(1, longest + 1)]
    else:
        train_images, train_kept, train_skipped = features(train_set)
        skipped = [*skipped, *train_skipped]
        fit = (train_images, torch.tensor([train_set.labels[i] for i in train_kept]))
        checked = (images, torch.tensor([test.labels[i] for i in kept]))
        held = None
        if val_set is not None:
            val_images, val_kept, val_skipped = features(val_set)
            skipped = [*skipped, *val_skipped]
            held = (val_images, torch.tensor([val_set.labels[i] for i in val_kept]))
        metrics = linear_probe(fit, checked, held, probe)
    seconds = time.perf_counter() - started
    return EvalResult(
        dataset=test.name,
        task=task,
        model=model.card.name,
        pretrained=pretrained,
        metrics=metrics,
        images=len(kept),
        texts=texts,
        skipped=skipped,
        fingerprint=fingerprint,
        seconds=seconds,
        images_per_second=len(kept) / embed_seconds if embed_seconds > 0 else 0.0,
        classnames=list(test.classnames),
        confusion=confusion,
        recall_curves=curves,
    )


def resolve_task(data: EvalData, task: Task | None = None) -> Task:
    """``task``, or the one ``data``'s kind implies; :class:`InputError` if ``data`` cannot serve for it."""
    task = task or ("zeroshot_retrieval" if data.kind == "retrieval" else "zeroshot_classification")
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    wanted = "retrieval" if task == "zeroshot_retrieval" else "classification"
    if data.kind != wanted:
        raise InputError(f"task {task} needs a {wanted} data set; {data.name!r} is a {data.kind} data set")
    return task


def _load(
    data: EvalData | str | os.PathLike[str],
    split: str | None,
    classnames: str | os.PathLike[str] | None,
    templates: str | os.PathLike[str] | None,
    parent: EvalData | str | os.PathLike[str] | None = None,
) -> EvalData:
    """``data`` itself, or read from a path; a bare split name (``split`` None) is a split of ``parent``."""
    if isinstance(data, EvalData):
        return data
    if split is None:
        if isinstance(parent, EvalData):
            raise InputError(f"split {data!r} of an in-memory data set: pass an EvalData for it instead")
        assert parent is not None
        name = os.fspath(data)
        if not (Path(parent) / name).is_dir():  # else load_data would read the whole folder: the test images
            raise InputError(
                f"{parent}: no {name!r} split for the linear probe (a {name}/ folder of class sub-folders, or "
                f"CLIP_benchmark's {name}/nshards.txt); name another split or pass an EvalData"
            )
        return load_data(parent, name, classnames=classnames, templates=templates)
    return load_data(data, split, classnames=classnames, templates=templates)

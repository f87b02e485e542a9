"""Contrastive training (`clip_core.training`, `clip train`): schedule, parameter groups, learning, freezing,
accumulation, gradient checkpointing, checkpoints, exact resume and multi-process training under torchrun."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import clip_core
from clip_core.cli import main
from clip_core.eval import evaluate, write_wds
from clip_core.training import (
    CosineWithWarmup,
    StepBatches,
    TensorPairs,
    TrainConfig,
    Trainer,
    cosine_with_warmup,
    parameter_groups,
    read_log,
    read_pairs,
    read_training_state,
    split_weight_decay,
    train,
)
from clip_core.training.checkpoint import STATE_FILE, checkpoints

COLOURS = [(230, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 30), (150, 40, 200), (250, 140, 20)]
NAMES = ["red", "green", "blue", "yellow", "purple", "orange"]


def toy_pairs(count: int = 48, size: int = 32) -> TensorPairs:
    """Plain colour images and their colour names: learnable by the tiny card in a few updates."""
    pixels = torch.stack(
        [
            torch.tensor(COLOURS[i % 6], dtype=torch.float32).div(255).view(3, 1, 1).expand(3, size, size)
            for i in range(count)
        ]
    )
    noise = torch.Generator().manual_seed(0)
    pixels = pixels + 0.05 * torch.randn(pixels.shape, generator=noise)
    return TensorPairs(pixels, [f"a {NAMES[i % 6]} square" for i in range(count)])


def config(tmp_path: Path, **changes: Any) -> TrainConfig:
    options: dict[str, Any] = {
        "card": "tiny",
        "out": tmp_path / "run",
        "steps": 6,
        "batch_size": 12,
        "lr": 5e-3,
        "warmup_steps": 2,
        "progress": False,
    }
    return TrainConfig(**{**options, **changes})


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert different == []


def test_schedule_warms_up_linearly_then_follows_a_cosine_to_min_lr() -> None:
    values = [cosine_with_warmup(step, 1.0, 4, 20, min_lr=0.1) for step in range(21)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == pytest.approx(1.0)
    assert values[12] == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the decay
    assert values[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(values[4:]))
    # open_clip's cosine_lr with min_lr 0: 0.5 * (1 + cos(pi * e / es)) * base after warm-up
    assert cosine_with_warmup(9, 2.0, 4, 20) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 16)) * 2.0)
    assert cosine_with_warmup(3, 1.0, 10, 5) == pytest.approx(0.4)  # warm-up longer than the run: still linear


def test_schedule_sets_each_groups_learning_rate_from_its_own_base() -> None:
    weights_a, weights_b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([{"params": [weights_a], "lr": 1.0}, {"params": [weights_b], "lr": 0.5}])
    scheduler = CosineWithWarmup(optimizer, warmup_steps=2, total_steps=6)
    seen = []
    for _ in range(6):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert seen[0] == [0.5, 0.25] and seen[1] == [1.0, 0.5]
    assert [pair[0] for pair in seen] == pytest.approx([cosine_with_warmup(s, 1.0, 2, 6) for s in range(6)])


def test_weight_decay_spares_biases_norms_embeddings_and_the_logit_scale() -> None:
    model = clip_core.create_model("tiny")
    decay, no_decay = split_weight_decay(model)
    assert decay == ["visual.patch.weight", "visual.proj.weight", "text.proj.weight"]
    assert set(no_decay) == {
        "logit_scale",
        "visual.patch.bias",
        "visual.norm.weight",
        "visual.norm.bias",
        "text.embed.weight",  # an nn.Embedding
        "text.norm.weight",
        "text.norm.bias",
    }
    groups = parameter_groups(model, 0.2)
    assert [g["weight_decay"] for g in groups] == [0.2, 0.0]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_weight_decay_spares_the_vit_and_text_transformer_embeddings() -> None:
    card = {
        "name": "small",
        "embed_dim": 16,
        "image": {"kind": "vit", "image_size": 16, "patch_size": 8, "width": 32, "layers": 1, "heads": 2},
        "text": {
            "kind": "text-transformer",
            "context_length": 8,
            "vocab_size": 64,
            "width": 32,
            "layers": 1,
            "heads": 2,
        },
    }
    decay, no_decay = split_weight_decay(clip_core.create_model(card))
    for name in (
        "visual.trunk.pos_embed",
        "visual.trunk.cls_token",
        "text.positional_embedding",
        "text.token_embedding.weight",
        "visual.trunk.blocks.0.norm1.weight",
        "text.blocks.0.attn.qkv.bias",
    ):
        assert name in no_decay
    for name in (
        "visual.trunk.patch_embed.proj.weight",
        "visual.trunk.blocks.0.attn.qkv.weight",
        "visual.proj.weight",
        "text.blocks.0.fc1.weight",
        "text.text_projection.weight",
    ):
        assert name in decay


def test_step_batches_depend_only_on_seed_and_step_and_split_by_rank() -> None:
    whole = StepBatches(50, 8, seed=3, total_steps=12)
    batches = list(whole)
    assert len(batches) == 12 and all(len(b) == 8 for b in batches)
    assert sorted(i for b in batches[:6] for i in b) == sorted(whole.permutation(0)[:48].tolist())  # epoch 0
    resumed = list(StepBatches(50, 8, seed=3, start_step=7, total_steps=12))
    assert resumed == batches[7:]
    halves = [list(StepBatches(50, 8, seed=3, total_steps=12, rank=r, world_size=2)) for r in range(2)]
    assert [a + b for a, b in zip(*halves, strict=True)] == batches


def test_a_few_updates_reduce_the_loss_on_a_learnable_toy_set(tmp_path: Path) -> None:
    data = toy_pairs()
    result = train(config(tmp_path, steps=40, batch_size=12, checkpoints=False), dataset=data)
    losses = [r.loss for r in result.history]
    assert len(losses) == 40 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    assert result.model_dir is not None and (result.model_dir / "model.safetensors").is_file()


def test_the_logit_scale_is_clamped_at_ln_100(tmp_path: Path) -> None:
    model = clip_core.create_model("tiny")
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100) + 1)  # above the bound: one small step cannot bring it back
    trainer = Trainer(config(tmp_path, steps=1, lr=1e-6, checkpoints=False), model=model, dataset=toy_pairs())
    trainer.fit()
    assert model.logit_scale.detach() == torch.tensor(math.log(100))  # only the clamp puts it exactly there


@pytest.mark.parametrize("tower", ["image", "text"])
def test_freezing_a_tower_leaves_its_weights_identical_and_it_in_eval_mode(tmp_path: Path, tower: str) -> None:
    torch.manual_seed(0)
    model = clip_core.create_model("tiny")
    frozen, trained = (model.visual, model.text) if tower == "image" else (model.text, model.visual)
    before_frozen, before_trained = weights(frozen), weights(trained)
    trainer = Trainer(config(tmp_path, freeze=tower, steps=4, checkpoints=False), model=model, dataset=toy_pairs())
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimized for p in frozen.parameters())
    trainer.fit()
    assert_identical(before_frozen, weights(frozen))
    assert not frozen.training and trained.training
    assert all(not torch.equal(before_trained[k], v) for k, v in weights(trained).items() if k.endswith("proj.weight"))


def test_a_run_stopped_and_resumed_is_bit_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    data = toy_pairs(50)
    whole = config(tmp_path / "whole", steps=8, save_every=3, accum_steps=2)
    torch.manual_seed(123)  # the trainer seeds itself: the state outside must not matter
    reference = train(whole, dataset=data)
    first = config(tmp_path / "split", steps=8, save_every=3, accum_steps=2)
    stopped = Trainer(first, dataset=data)
    stopped.fit(until=5)  # the last checkpoint is after update 3: updates 4 and 5 are lost, as in a crash
    assert stopped.step == 5
    torch.manual_seed(999)
    resumed = Trainer(first.model_copy(update={"resume": "latest"}), dataset=data)
    assert resumed.step == 3
    finished = resumed.fit()
    assert finished.steps == 8 and [r.step for r in finished.history] == [4, 5, 6, 7, 8]
    assert [r.loss for r in finished.history] == [r.loss for r in reference.history[3:]]
    assert reference.model_dir is not None and finished.model_dir is not None
    a = clip_core.load_checkpoint(reference.model_dir).state_dict()
    b = clip_core.load_checkpoint(finished.model_dir).state_dict()
    assert_identical(a, b)
    state = read_training_state(tmp_path / "split" / "run" / "checkpoints" / "step-00000008")
    assert state["step"] == 8 and state["scheduler"]["last_epoch"] == 8


def test_checkpoints_are_complete_loadable_and_pruned(tmp_path: Path) -> None:
    trainer = Trainer(config(tmp_path, steps=7, save_every=2, keep_checkpoints=2), dataset=toy_pairs())
    result = trainer.fit()
    folder = tmp_path / "run" / "checkpoints"
    assert [step for step, _ in checkpoints(folder)] == [6, 7]  # every 2, the last, the newest 2 kept
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000006", "step-00000007"]  # no partial folders
    last = folder / "step-00000007"
    assert sorted(p.name for p in last.iterdir()) == ["card.json", "model.safetensors", STATE_FILE]
    loaded = clip_core.load_checkpoint(last)
    assert_identical(loaded.state_dict(), weights(trainer.model))
    assert result.model_dir == tmp_path / "run" / "model"
    assert_identical(clip_core.load_checkpoint(result.model_dir).state_dict(), loaded.state_dict())


def test_a_checkpoint_that_fails_midway_leaves_no_checkpoint_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clip_core.training.checkpoint as module

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    trainer = Trainer(config(tmp_path, steps=2), dataset=toy_pairs())
    monkeypatch.setattr(module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.fit()
    folder = tmp_path / "run" / "checkpoints"
    assert list(folder.iterdir()) == []


def test_resuming_with_options_that_shape_the_optimizer_changed_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train(config(tmp_path, steps=2, freeze="text"), dataset=toy_pairs())
    with pytest.raises(clip_core.CheckpointError, match=r"freeze='text' \(now None\); resume with the same options"):
        Trainer(config(tmp_path, steps=4, resume="latest"), dataset=toy_pairs())
    with caplog.at_level(logging.WARNING, logger="clip_core.training"):
        trainer = Trainer(config(tmp_path, steps=4, lr=1e-3, freeze="text", resume="latest"), dataset=toy_pairs())
    assert trainer.step == 2 and "with changed options: lr, steps" in caplog.text


def test_a_new_run_refuses_an_out_folder_holding_checkpoints(tmp_path: Path) -> None:
    train(config(tmp_path, steps=2), dataset=toy_pairs())
    with pytest.raises(clip_core.InputError, match="already holds checkpoints; resume with --resume latest"):
        Trainer(config(tmp_path, steps=2), dataset=toy_pairs())


def update_gradients(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The gradient of the trainer's first update (left in ``.grad`` until the next update starts)."""
    trainer.fit(until=1)
    return {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(("loss", "freeze"), [("clip", None), ("clip", "image"), ("siglip", "text"), ("ntxent", None)])
def test_accumulation_gives_the_gradient_of_the_whole_batch(tmp_path: Path, loss: str, freeze: str | None) -> None:
    """Feature caching: 4 micro-batches of 3 give the gradient of one batch of 12, up to float rounding, for any
    loss, with or without a frozen tower; the logit scale and bias get theirs once."""
    card = {**clip_core.get_card("tiny").model_dump(), "name": "tiny-bias", "init_logit_bias": -10.0}
    gradients = []
    for accum in (1, 4):
        torch.manual_seed(0)
        model = clip_core.create_model(card)
        options = {"accum_steps": accum, "loss": loss, "freeze": freeze, "checkpoints": False}
        gradients.append(
            update_gradients(Trainer(config(tmp_path / str(accum), **options), model=model, dataset=toy_pairs()))
        )
    whole, accumulated = gradients
    assert whole.keys() == accumulated.keys() and whole
    assert ("logit_bias" in whole) == (loss == "siglip") and ("logit_scale" in whole) == (loss != "ntxent")
    for name, grad in whole.items():  # float32 rounding: within 1e-5 of each gradient's largest entry
        assert (accumulated[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), name


def test_bf16_autocast_trains(tmp_path: Path) -> None:
    result = train(config(tmp_path, precision="bf16", steps=3, checkpoints=False), dataset=toy_pairs())
    assert all(math.isfinite(r.loss) for r in result.history)


def test_a_tower_without_grad_checkpointing_gets_a_one_line_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="clip_core.training"):
        Trainer(config(tmp_path, grad_checkpointing=True), dataset=toy_pairs())
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("\n" not in m and "no set_grad_checkpointing" in m for m in messages)
    assert "image tower (PatchMeanTower)" in messages[0] and "text tower (BagOfWordsTower)" in messages[1]


@pytest.mark.parametrize("tower", ["image", "text"])
def test_grad_checkpointing_changes_no_gradient(tower: str) -> None:
    card = {
        "name": "small",
        "embed_dim": 16,
        "image": {"kind": "vit", "image_size": 16, "patch_size": 8, "width": 32, "layers": 3, "heads": 2},
        "text": {
            "kind": "text-transformer",
            "context_length": 8,
            "vocab_size": 64,
            "width": 32,
            "layers": 3,
            "heads": 2,
        },
    }
    torch.manual_seed(0)
    model = clip_core.create_model(card)
    module = model.visual if tower == "image" else model.text
    inputs = torch.randn(4, 3, 16, 16) if tower == "image" else torch.randint(1, 63, (4, 8))
    grads = []
    for enabled in (False, True):
        module.set_grad_checkpointing(enabled)
        module.zero_grad()
        module(inputs).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)
    with torch.no_grad():  # inference is unaffected
        module.eval()
        assert module(inputs).shape == (4, 16)


# -- data and the command line -------------------------------------------------------------------------------
def write_images(folder: Path, count: int = 12, size: int = 32) -> list[tuple[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        name = f"img{i}.png"
        Image.new("RGB", (size, size), COLOURS[i % 6]).save(folder / name)
        rows.append((name, f"a {NAMES[i % 6]} square"))
    return rows


def test_pairs_read_from_csv_jsonl_and_folder_agree(tmp_path: Path) -> None:
    rows = write_images(tmp_path / "images")
    (tmp_path / "data.csv").write_text("path,text\n" + "".join(f"images/{a},{b}\n" for a, b in rows))
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps({"image": f"images/{a}", "caption": b}) + "\n" for a, b in rows)
    )
    for name, caption in rows:
        (tmp_path / "images" / name).with_suffix(".txt").write_text(caption + "\n")
    from_csv = read_pairs(tmp_path / "data.csv", image_column="path", caption_column="text")
    from_jsonl = read_pairs(tmp_path / "data.jsonl")
    from_folder = read_pairs(tmp_path / "images")
    assert sorted(from_csv, key=str) == sorted(from_jsonl, key=str) == sorted(from_folder, key=str)
    assert len(from_csv) == 12 and from_csv[0].image == tmp_path / "images" / "img0.png"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("image,caption\nmissing.png,a cat\n", "data.csv:2: image"),
        ("image,caption\n", "no image-caption pairs"),
        ("image,text\nx.png,a cat\n", "no column 'caption' (columns: image, text); name it with --caption-column"),
    ],
)
def test_bad_data_files_are_refused_naming_the_problem(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "data.csv").write_text(content)
    with pytest.raises(clip_core.InputError) as error:
        read_pairs(tmp_path / "data.csv")
    assert message in str(error.value)


def test_clip_train_trains_from_a_csv_and_writes_a_loadable_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = write_images(tmp_path / "images")
    (tmp_path / "data.csv").write_text("image,caption\n" + "".join(f"images/{a},{b}\n" for a, b in rows))
    for i, name in enumerate(NAMES):  # an image folder per class, evaluated during training
        (tmp_path / "classes" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), COLOURS[i]).save(tmp_path / "classes" / name / "x.png")
    argv = ["train", "tiny", str(tmp_path / "data.csv"), "--out", str(tmp_path / "out"), "--steps", "3"]
    argv += ["--eval-data", str(tmp_path / "classes"), "--eval-every", "2"]
    status = main([*argv, "--batch-size", "4", "--lr", "1e-3", "--no-progress", "--loss-option", "local_loss=false"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "trained 3 updates" in out and str(tmp_path / "out" / "model") in out
    assert [line["step"] for line in read_log(tmp_path / "out") if "eval" in line] == [2, 3]
    last = read_log(tmp_path / "out")[-1]["eval"]
    assert f"evaluation after update 3: acc1 {last['acc1']:.4f}, acc5 {last['acc5']:.4f}," in out
    model = clip_core.load_checkpoint(tmp_path / "out" / "model")
    assert model.card.name == "tiny"
    state = read_training_state(tmp_path / "out" / "checkpoints" / "step-00000003")
    assert state["config"]["lr"] == 1e-3 and state["config"]["loss_options"] == {"local_loss": False}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "tiny", "{tmp}/missing.csv"], "missing.csv: no such data file or folder"),
        (["train", "tiny", "{tmp}/bad.csv"], "no column 'image' (columns: file, caption); name it with --image-column"),
        (["train", "tiny", "{tmp}/bad.csv", "--image-column", "file", "--batch-size", "0"], "batch_size: Input should"),
        (["train", "tiny", "{tmp}/bad.csv", "--image-column", "file", "--loss", "nope"], "unknown loss 'nope'"),
        (
            ["train", "tiny", "{tmp}/bad.csv", "--image-column", "file"],
            "the data set has 4 pairs, fewer than one batch",
        ),
        (
            ["train", "tiny", "{tmp}/bad.csv", "--image-column", "file", "--eval-data", "{tmp}/nowhere"],
            "eval_data: ",  # before the batch is found too big: the evaluation data is checked first
        ),
        (["train", "tiny", "{tmp}/bad.csv", "--eval-every", "2"], "eval_every and eval_task need eval_data"),
    ],
)
def test_clip_train_user_errors_print_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    write_images(tmp_path / "images", count=4)
    (tmp_path / "bad.csv").write_text("file,caption\n" + "".join(f"images/img{i}.png,a square\n" for i in range(4)))
    status = main([arg.format(tmp=tmp_path) for arg in argv] + ["--out", str(tmp_path / "out"), "--no-progress"])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("clip: error: ") and message in err
    if "--eval-data" in argv:
        assert f"{tmp_path}/nowhere: no such data set folder or file" in err


def test_two_processes_under_torchrun_match_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    rows = write_images(tmp_path / "images", count=24)
    (tmp_path / "data.csv").write_text("image,caption\n" + "".join(f"images/{a},{b}\n" for a, b in rows))
    common = [str(tmp_path / "data.csv"), "--steps", "4", "--batch-size", "8", "--lr", "5e-3", "--no-progress"]
    common += ["--eval-data", str(write_eval_set(tmp_path / "colours")), "--eval-every", "2"]
    env = {**os.environ, "CLIP_DISABLED_PLUGINS": "vit,resnet,text", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*command, "-m", "clip_core", "train", "tiny", *common, "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the 2 processes ended with identical weights (checked)" in done.stdout
    assert main(["train", "tiny", *common, "--out", str(tmp_path / "one")]) == 0
    two = clip_core.load_checkpoint(tmp_path / "two" / "model").state_dict()
    one = clip_core.load_checkpoint(tmp_path / "one" / "model").state_dict()
    for key, value in one.items():
        torch.testing.assert_close(two[key], value, rtol=1e-5, atol=1e-5, msg=key)
    evaluated = [
        [(line["step"], line["eval"]) for line in read_log(tmp_path / r) if "eval" in line] for r in ("two", "one")
    ]
    assert evaluated[0] == evaluated[1] and [step for step, _ in evaluated[0]] == [2, 4]
    model = clip_core.load_checkpoint(tmp_path / "two" / "model")
    assert evaluated[0][-1][1] == evaluate(model, tmp_path / "colours").metrics


def test_an_evaluation_failing_under_torchrun_stops_both_processes_saying_why(tmp_path: Path) -> None:
    """The first process evaluates while the second waits: when the evaluation fails (no image of the eval set
    decodes, which only evaluating finds out), the second process stops too, saying why, rather than being torn
    down by torchrun without a word of it."""
    rows = write_images(tmp_path / "images", count=16)
    (tmp_path / "data.csv").write_text("image,caption\n" + "".join(f"images/{a},{b}\n" for a, b in rows))
    for name in NAMES[:2]:
        (tmp_path / "bad" / name).mkdir(parents=True)
        (tmp_path / "bad" / name / "1.png").write_bytes(b"not a picture")
    arguments = [str(tmp_path / "data.csv"), "--steps", "2", "--batch-size", "8", "--no-progress"]
    arguments += ["--eval-data", str(tmp_path / "bad"), "--eval-every", "1", "--out", str(tmp_path / "run")]
    env = {**os.environ, "CLIP_DISABLED_PLUGINS": "vit,resnet,text", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*command, "-m", "clip_core", "train", "tiny", *arguments], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode != 0
    assert "none of its 2 images could be read" in done.stderr
    assert "the evaluation after update 1 failed on the first process" in done.stderr


def tower_calls(tower: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Record the inputs and outputs of every call of ``tower`` (in call order) from now on."""
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []

    def record(module: torch.nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        inputs.append(args[0].detach().clone())
        outputs.append(output.detach().clone())

    tower.register_forward_hook(record)
    return inputs, outputs


def test_accumulated_steps_on_a_resnet_card_move_batchnorm_running_statistics_as_one_pass_would(
    tmp_path: Path,
) -> None:
    """The cache pass of feature caching leaves BatchNorm's running statistics alone: after an update of 4
    micro-batches they are what one training-mode forward pass over each micro-batch gives (4 updates, not 8)."""
    card = {
        "name": "small-resnet",
        "embed_dim": 16,
        "image": {"kind": "modified-resnet", "image_size": 32, "layers": [1, 1, 1, 1], "width": 8},
        "text": {"kind": "bag-of-words", "context_length": 24, "width": 20},
        "tokenizer": {"kind": "bytes"},
    }
    torch.manual_seed(0)
    model = clip_core.create_model(card)
    reference = clip_core.create_model(card).train()
    reference.load_state_dict(model.state_dict())
    inputs, _ = tower_calls(model.visual)
    trainer = Trainer(config(tmp_path, accum_steps=4, checkpoints=False), model=model, dataset=toy_pairs())
    trainer.fit(until=1)
    assert len(inputs) == 8  # the cache pass, then the gradient pass, over 4 micro-batches
    with torch.no_grad():
        for pixels in inputs[:4]:
            reference.visual(pixels)
    expected = dict(reference.named_buffers())
    batchnorms = [name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batchnorms
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, expected[name], rtol=0, atol=1e-6, msg=name)
    assert all(int(expected[f"{name}.num_batches_tracked"]) == 4 for name in batchnorms)


def test_accumulation_replays_the_dropout_and_drop_path_masks_of_the_cache_pass(tmp_path: Path) -> None:
    """With dropout and drop-path, the gradient pass over each micro-batch gives exactly the embeddings its cache
    pass gave (the same masks), so the accumulated gradient is the whole-batch gradient for those masks."""
    model = dropout_model(rate=0.5)
    _, outputs = tower_calls(model.visual)
    trainer = Trainer(config(tmp_path, accum_steps=4, checkpoints=False), model=model, dataset=toy_pairs())
    trainer.fit(until=1)
    assert len(outputs) == 8
    for j in range(4):
        assert torch.equal(outputs[j], outputs[4 + j]), j


def test_weight_decay_spares_token_and_position_embeddings_which_open_clip_decays() -> None:
    """The documented choice: timm's rule, not open_clip's (which decays every parameter of two or more dimensions
    whose name lacks bn / ln / bias / logit_scale). The two differ exactly on the learned embeddings and tokens."""
    card = {
        "name": "small",
        "embed_dim": 16,
        "image": {"kind": "vit", "image_size": 16, "patch_size": 8, "width": 16, "layers": 1, "heads": 2},
        "text": {"kind": "text-transformer", "width": 16, "layers": 1, "heads": 2, "context_length": 8},
        "tokenizer": {"kind": "clip-bpe"},
    }
    model = clip_core.create_model(card)
    decay, _ = split_weight_decay(model)
    open_clip_decay = [
        name
        for name, p in model.named_parameters()
        if not (p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name)
    ]
    assert set(open_clip_decay) - set(decay) == {
        "visual.trunk.pos_embed",
        "visual.trunk.cls_token",  # [1, 1, width] in timm's ViT
        "text.positional_embedding",
        "text.token_embedding.weight",
    }
    assert set(decay) <= set(open_clip_decay)


# -- evaluation during training --------------------------------------------------------------------------------
def write_eval_set(root: Path, splits: tuple[str, ...] = ("test",)) -> Path:
    """A CLIP_benchmark wds classification set of the six toy colours (two shades each), for --eval-data."""
    for offset, split in enumerate(splits):
        samples = [
            (Image.new("RGB", (32, 32), tuple(min(255, c + 8 * (k + offset)) for c in COLOURS[i])), i)
            for i in range(6)
            for k in range(2)
        ]
        write_wds(root, samples, split=split, classnames=NAMES, templates=["a {c} square"])
    return root


def dropout_model(rate: float = 0.3) -> clip_core.ClipModel:
    """A small card with dropout and drop-path at ``rate``: its training draws from the random number generators."""
    card = {
        "name": "small-dropout",
        "embed_dim": 16,
        "image": {
            "kind": "timm",
            "model_name": "vit_tiny_patch16_224",
            "image_size": 32,
            "drop": rate,
            "drop_path": rate,
            "model_args": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
        },
        "text": {"kind": "bag-of-words", "context_length": 24, "width": 20},
        "tokenizer": {"kind": "bytes"},
    }
    torch.manual_seed(0)
    return clip_core.create_model(card)


def test_evaluations_run_at_each_epoch_end_and_the_last_update_with_the_numbers_evaluate_gives(
    tmp_path: Path,
) -> None:
    data = write_eval_set(tmp_path / "colours")
    run = config(tmp_path, steps=None, epochs=2.5, log_every=3, eval_data=data, tensorboard=True)
    result = train(run, dataset=toy_pairs())  # 48 pairs, batch 12: 4 updates an epoch, 10 in all
    log = read_log(tmp_path / "run")
    assert [line["step"] for line in log] == [3, 4, 6, 8, 9, 10]  # every 3, and every evaluated update
    assert [line["step"] for line in log if "eval" in line] == [4, 8, 10] == list(result.evaluations)
    assert all(set(line) - {"eval"} == set(log[0]) for line in log)
    last = log[-1]["eval"]
    assert set(last) == {"acc1", "acc5", "mean_per_class_recall"}
    assert {step: line["eval"] for step, line in zip([4, 8, 10], log[1::2], strict=True)} == result.evaluations
    assert result.model_dir is not None
    assert last == evaluate(clip_core.load_checkpoint(result.model_dir), data).metrics
    assert last["acc1"] > 0.5  # the toy colours are learnt: the evaluation sees the trained weights
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    board.Reload()
    assert [(e.step, e.value) for e in board.Scalars("eval/acc1")] == [
        (step, pytest.approx(metrics["acc1"])) for step, metrics in result.evaluations.items()
    ]


def test_training_is_bit_identical_with_and_without_evaluation(tmp_path: Path) -> None:
    """Evaluating (here a linear probe, which reseeds torch, on a card whose dropout draws from the generators)
    changes no update: same losses, same weights, the same modules in training mode afterwards."""
    data = write_eval_set(tmp_path / "colours", splits=("train", "test"))
    runs = []
    for name, evaluation in (("plain", {}), ("evaluated", {"eval_data": data, "eval_every": 2})):
        options = config(tmp_path / name, steps=5, accum_steps=2, freeze="text", **evaluation)
        trainer = Trainer(
            options.model_copy(update={"eval_task": "linear_probe"} if evaluation else {}),
            model=dropout_model(),
            dataset=toy_pairs(),
        )
        runs.append((trainer, trainer.fit()))
    (plain, plain_result), (evaluated, evaluated_result) = runs
    assert list(evaluated_result.evaluations) == [2, 4, 5] and "lp_acc1" in evaluated_result.evaluations[5]
    assert [r.loss for r in evaluated_result.history] == [r.loss for r in plain_result.history]
    assert_identical(weights(plain.model), weights(evaluated.model))
    modes = [(name, m.training) for name, m in evaluated.model.named_modules()]
    assert modes == [(name, m.training) for name, m in plain.model.named_modules()]
    assert evaluated.model.visual.training and not evaluated.model.text.training


def test_a_resumed_run_evaluates_after_the_same_updates_with_the_same_numbers(tmp_path: Path) -> None:
    data, pairs = write_eval_set(tmp_path / "colours"), toy_pairs(50)
    reference = train(config(tmp_path / "whole", steps=8, save_every=3, eval_data=data, eval_every=3), dataset=pairs)
    first = config(tmp_path / "split", steps=8, save_every=3, eval_data=data, eval_every=3)
    stopped = Trainer(first, dataset=pairs).fit(until=5)  # killed after update 5: resumed from update 3
    resumed = Trainer(first.model_copy(update={"resume": "latest"}), dataset=pairs).fit()
    assert list(stopped.evaluations) == [3] and list(resumed.evaluations) == [6, 8]
    assert {**stopped.evaluations, **resumed.evaluations} == reference.evaluations
    logged = [(line["step"], line["eval"]) for line in read_log(tmp_path / "split" / "run") if "eval" in line]
    assert logged == [(3, reference.evaluations[3]), (6, reference.evaluations[6]), (8, reference.evaluations[8])]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"eval_data": "{tmp}/nowhere"}, "eval_data: {tmp}/nowhere: no such data set folder or file"),
        ({"eval_data": "{tmp}/colours", "eval_task": "zeroshot_retrieval"}, "eval_data: task zeroshot_retrieval needs"),
        (
            {"eval_data": "{tmp}/colours", "eval_task": "linear_probe"},
            "eval_data: {tmp}/colours/test: no image files",
        ),  # no train split
    ],
)
def test_bad_evaluation_data_is_refused_before_training_starts(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    write_eval_set(tmp_path / "colours")
    options = {key: value.format(tmp=tmp_path) for key, value in changes.items()}
    with pytest.raises(clip_core.InputError) as error:
        Trainer(config(tmp_path, **options), dataset=toy_pairs())
    assert message.format(tmp=tmp_path) in str(error.value)
    assert not (tmp_path / "run").exists()

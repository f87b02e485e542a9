"""Training from img2dataset's webdataset shards (`clip train CARD 'shards/{00000..00003}.tar'`): naming shards,
reading their samples, the global stream split by process and worker, exact resume, damaged samples, the epoch
length, the training log, and two processes under torchrun."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import clip_core
from clip_core.cli import main
from clip_core.errors import InputError
from clip_core.shardfiles import expand_shards, is_shard_spec, scan_shard
from clip_core.training import ShardPairs, TrainConfig, Trainer, read_log, train
from clip_core.training.data import PairCollator

COLOURS = [(230, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 30)]
NAMES = ["red", "green", "blue", "yellow"]


def image_bytes(colour: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, shards: int = 4, per_shard: int = 10, broken: dict[int, str] | None = None) -> list[str]:
    """img2dataset-style shards of plain colour squares and their colour names; ``broken[i]`` damages sample
    ``i`` of shard 0 ("image": undecodable bytes, "caption": no caption member). Returns the keys in order."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    suffixes = ["jpg", "png", "webp", "jpg"]
    for shard in range(shards):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as archive:
            for i in range(per_shard):
                key = f"{shard:05d}{i:04d}"
                n = (shard * per_shard + i) % 4
                suffix = suffixes[shard % 4]
                fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[suffix]
                damage = (broken or {}).get(i) if shard == 0 else None
                add(
                    archive,
                    f"{key}.jpg" if damage == "image" else f"{key}.{suffix}",
                    b"not an image" if damage == "image" else image_bytes(COLOURS[n], fmt),
                )
                if damage != "caption":
                    add(archive, f"{key}.txt", f"a {NAMES[n]} square".encode())
                add(archive, f"{key}.json", json.dumps({"key": key}).encode())
                keys.append(key)
    return keys


def config(tmp_path: Path, data: Path | str, **changes: Any) -> TrainConfig:
    options: dict[str, Any] = {
        "card": "tiny",
        "data": data,
        "out": tmp_path / "run",
        "steps": 6,
        "batch_size": 8,
        "lr": 5e-3,
        "warmup_steps": 2,
        "progress": False,
        "log_every": 1,
    }
    return TrainConfig(**{**options, **changes})


def test_brace_patterns_list_files_and_file_urls_name_the_same_shards(tmp_path: Path) -> None:
    write_shards(tmp_path / "shards", shards=3, per_shard=2)
    (tmp_path / "shards.txt").write_text("# the shards\nshards/00000.tar\nshards/00001.tar\n\nshards/00002.tar\n")
    expected = [tmp_path / "shards" / f"{i:05d}.tar" for i in range(3)]
    assert expand_shards(f"{tmp_path}/shards/{{00000..00002}}.tar") == expected
    assert expand_shards(f"file:{tmp_path}/shards/{{00000,00001,00002}}.tar") == expected
    assert expand_shards(tmp_path / "shards.txt") == expected
    assert expand_shards(f"{tmp_path}/shards/00000.tar::{tmp_path}/shards/{{00001..00002}}.tar") == expected
    assert is_shard_spec("s/{0..3}.tar") and is_shard_spec("list.txt") and not is_shard_spec("pairs.csv")
    with pytest.raises(InputError, match=r"00003\.tar does not exist"):
        expand_shards(f"{tmp_path}/shards/{{00000..00003}}.tar")


def test_a_shard_holds_its_samples_with_json_ignored_and_incomplete_ones_marked(tmp_path: Path) -> None:
    keys = write_shards(tmp_path, shards=1, per_shard=5, broken={2: "caption"})
    samples = scan_shard(tmp_path / "00000.tar")
    assert [s.key for s in samples] == keys
    assert [s.complete for s in samples] == [True, True, False, True, True]


def test_a_truncated_shard_keeps_the_samples_before_the_damage(tmp_path: Path) -> None:
    write_shards(tmp_path, shards=1, per_shard=6)
    data = (tmp_path / "00000.tar").read_bytes()
    (tmp_path / "00000.tar").write_bytes(data[: len(data) // 2])
    samples = scan_shard(tmp_path / "00000.tar")
    assert 0 < len(samples) < 6


def batches(pairs: ShardPairs, **options: Any) -> list[Any]:
    arguments = {"cursor": (0, 0, 0), "start_step": 0, "stop": 7, "global_batch": 8, "rank": 0, "world_size": 1}
    arguments.update(options)
    arguments.setdefault("workers", 0)
    return list(pairs.loader(**arguments, collate=PairCollator(clip_core.get_tokenizer("tiny"))))


def test_the_stream_is_split_by_rank_and_worker_into_the_single_process_batches(tmp_path: Path) -> None:
    """Property: concatenating the ranks' slices gives the one-process batch of each update, whatever the number
    of workers; every rank gets every update, though 3 shards do not split evenly over 2 ranks."""
    write_shards(tmp_path, shards=3, per_shard=9)
    pairs = ShardPairs(expand_shards(f"{tmp_path}/{{00000..00002}}.tar"), clip_core.get_preprocess("tiny"), seed=3)
    whole = batches(pairs)
    assert len(whole) == 7  # 56 samples from 27: the stream runs on into a second, reshuffled pass
    ranks = [batches(pairs, rank=rank, world_size=2, workers=2) for rank in range(2)]
    assert all(len(r) == 7 for r in ranks)
    for step, one in enumerate(whole):
        assert torch.equal(torch.cat([ranks[0][step].pixels, ranks[1][step].pixels]), one.pixels)
        assert torch.equal(torch.cat([ranks[0][step].ids, ranks[1][step].ids]), one.ids)
        assert ranks[0][step].cursor == ranks[1][step].cursor == one.cursor
    resumed = batches(pairs, cursor=whole[3].cursor, start_step=4)
    assert [torch.equal(a.pixels, b.pixels) for a, b in zip(resumed, whole[4:], strict=True)] == [True] * 3


def test_a_run_killed_and_resumed_repeats_and_skips_no_sample(tmp_path: Path) -> None:
    """The documented amount is zero: a resumed run continues bit for bit as the uninterrupted one."""
    write_shards(tmp_path / "shards", shards=3, per_shard=7)
    data = f"{tmp_path}/shards/{{00000..00002}}.tar"
    reference = train(config(tmp_path / "whole", data, steps=8, save_every=3, workers=2))
    first = config(tmp_path / "split", data, steps=8, save_every=3, workers=2)
    stopped = Trainer(first)
    stopped.fit(until=5)  # the last checkpoint is after update 3: updates 4 and 5 are lost, as in a crash
    resumed = Trainer(first.model_copy(update={"resume": "latest"}))
    assert resumed.step == 3
    finished = resumed.fit()
    assert [r.loss for r in finished.history] == [r.loss for r in reference.history[3:]]
    assert reference.model_dir is not None and finished.model_dir is not None
    a = clip_core.load_checkpoint(reference.model_dir).state_dict()
    b = clip_core.load_checkpoint(finished.model_dir).state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_damaged_samples_are_skipped_counted_and_batches_keep_their_size(tmp_path: Path) -> None:
    keys = write_shards(tmp_path / "shards", shards=1, per_shard=16, broken={1: "image", 5: "caption", 9: "image"})
    damaged = {keys[1], keys[5], keys[9]}
    data = f"{tmp_path}/shards/00000.tar"
    result = train(config(tmp_path, data, steps=4, batch_size=5))
    assert result.steps == 4
    # 4 updates x 5 = 20 complete samples: a pass over the 15 complete ones and on into the next pass
    pairs = ShardPairs(expand_shards(data), clip_core.get_preprocess("tiny"), seed=0)
    taken, expected = 0, 0
    for _, sample, _ in pairs.stream((0, 0, 0)):
        expected += sample.key in damaged
        taken += sample.complete
        if taken == 20:
            break
    pairs.close()
    assert expected >= 3
    assert read_log(tmp_path / "run")[-1]["skipped"] == expected


def test_the_epoch_length_is_counted_from_the_shards_or_set_by_train_num_samples(tmp_path: Path) -> None:
    write_shards(tmp_path / "shards", shards=2, per_shard=12, broken={0: "caption"})
    data = f"{tmp_path}/shards/{{00000..00001}}.tar"
    counted = Trainer(config(tmp_path / "a", data, steps=None, epochs=2))
    assert len(counted.dataset) == 23 and counted.total_steps == 6  # type: ignore[arg-type]
    given = Trainer(config(tmp_path / "b", data, steps=None, epochs=1, train_num_samples=80))
    assert given.total_steps == 10


def test_the_log_has_a_flushed_line_per_logged_update(tmp_path: Path) -> None:
    write_shards(tmp_path / "shards", shards=2, per_shard=12)
    data = f"{tmp_path}/shards/{{00000..00001}}.tar"
    result = train(config(tmp_path, data, steps=6, log_every=2, tensorboard=True))
    log = read_log(tmp_path / "run")
    assert [line["step"] for line in log] == [2, 4, 6]
    assert set(log[0]) == {"step", "loss", "lr", "logit_scale", "samples_per_second", "epoch", "skipped"}
    assert [line["loss"] for line in log] == [result.history[i].loss for i in (1, 3, 5)]
    assert log[-1]["logit_scale"] == pytest.approx(14.2857, rel=0.05)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_clip_train_reads_shards_under_torchrun_like_one_process(tmp_path: Path) -> None:
    write_shards(tmp_path / "shards", shards=4, per_shard=10)
    data = f"{tmp_path}/shards/{{00000..00003}}.tar"
    common = [data, "--steps", "8", "--batch-size", "8", "--lr", "5e-3", "--warmup-steps", "2", "--no-progress"]
    common += ["--log-every", "1", "--workers", "1"]
    env = {**os.environ, "CLIP_DISABLED_PLUGINS": "vit,resnet,text", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*command, "-m", "clip_core", "train", "tiny", *common, "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["train", "tiny", *common, "--out", str(tmp_path / "one")]) == 0
    two, one = read_log(tmp_path / "two"), read_log(tmp_path / "one")
    assert len(two) == 8 and two[-1]["loss"] < two[0]["loss"]
    for a, b in zip(two, one, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    model = clip_core.load_checkpoint(tmp_path / "two" / "model")
    assert model.card.name == "tiny"

"""`clip embed` across processes (torchrun): each process its share, resumable, one output identical to what one
process writes; and webdataset shards as a source."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import clip_core
from clip_core.cli import main
from clip_core.embedding import find_images, partial_folder, read_embeddings
from clip_core.embedding.file import index_path, manifest_path
from clip_core.embedding.ranks import share

ENV = {**os.environ, "CLIP_DISABLED_PLUGINS": "vit,resnet,text,losses", "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clip_core.create_model("tiny").save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


def make_folder(root: Path) -> Path:
    """Seven images of several sizes and modes and one that does not decode."""
    folder = root / "photos"
    folder.mkdir()
    for index in range(7):
        generator = torch.Generator().manual_seed(index)
        size = (20 + 3 * index, 17 + index)
        values = torch.randint(0, 256, (size[0] * size[1] * 3,), generator=generator).to(torch.uint8)
        image = Image.frombytes("RGB", size, bytes(values.tolist()))
        (image.convert("L") if index == 3 else image).save(folder / f"{index:02d}.{'png' if index % 2 else 'jpg'}")
    (folder / "broken.jpg").write_bytes(b"this is not an image")
    return folder


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, and by those, from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def manifest_without_time(output: Path) -> dict[str, object]:
    manifest = json.loads(manifest_path(output).read_text())
    manifest.pop("completed")
    return dict(manifest)


def assert_same_output(a: Path, b: Path) -> None:
    assert a.read_bytes() == b.read_bytes()
    assert index_path(a).read_bytes() == index_path(b).read_bytes()
    assert manifest_without_time(a) == manifest_without_time(b)


def batches(positions: list[int], size: int) -> list[list[int]]:
    return [positions[start : start + size] for start in range(0, len(positions), size)]


def test_shares_are_one_processs_whole_batches_contiguous_in_order_and_cover_every_pending_source_once() -> None:
    """Property: for any count, process count and batch size, the shares concatenated in rank order are the pending
    list, cut into batches they are the batches one process cuts it into, and their numbers of batches differ by at
    most one."""
    for count in range(15):
        for world in range(1, 5):
            for size in range(1, 5):
                pending = list(range(100, 100 + 2 * count, 2))
                shares = [share(pending, rank, world, size) for rank in range(world)]
                assert [position for part in shares for position in part] == pending
                assert [batch for part in shares for batch in batches(part, size)] == batches(pending, size)
                counts = [len(batches(part, size)) for part in shares]
                assert max(counts) - min(counts) <= 1


def test_two_processes_write_what_one_writes_and_resume_after_a_kill(tmp_path: Path, model_dir: Path) -> None:
    """Killed from outside (SIGKILL to torchrun and both processes) once each process has recorded a shard, then run
    again under torchrun: the output equals one process's. Each process's third source is a named pipe, which blocks
    it right after its first shard of two; the pipes are replaced by images for the rerun."""
    files = find_images([make_folder(tmp_path)])
    for name in ("copy-a.png", "copy-b.png"):  # ten files
        Image.open(files[0]).save(tmp_path / name)
        files.append(str(tmp_path / name))
    pipes = [tmp_path / "pipe-a.png", tmp_path / "pipe-b.png"]
    for pipe in pipes:
        os.mkfifo(pipe)
    listing = tmp_path / "sources.txt"  # twelve sources: process 0 takes the first six, process 1 the rest
    listing.write_text("\n".join([*files[:2], str(pipes[0]), *files[2:7], str(pipes[1]), *files[7:]]) + "\n")
    argv = [str(listing), "--model", str(model_dir), "--batch-size", "2", "--shard-size", "2", "--workers", "0"]
    out = tmp_path / "two" / "E.npy"
    out.parent.mkdir()
    command = [*TORCHRUN, "-m", "clip_core", "embed", *argv, "-o", str(out), "--no-progress"]
    job = subprocess.Popen(command, env=ENV)
    work = partial_folder(out)
    logs = [work / "progress.jsonl", work / "progress.1.jsonl"]
    deadline = time.monotonic() + 300
    while not all(log.exists() and log.read_bytes().count(b"\n") >= 1 for log in logs):
        assert job.poll() is None and time.monotonic() < deadline, "the job ended or hung before its first shards"
        time.sleep(0.05)
    for pid in [job.pid, *descendants(job.pid)]:  # torchrun and the processes it started, as a kill -9 would
        os.kill(pid, signal.SIGKILL)
    job.wait()
    assert not out.exists()
    recorded = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    assert sorted(record["shard"] for record in recorded) == ["000001.r1.safetensors", "000001.safetensors"]
    for pipe in pipes:
        pipe.unlink()
        Image.new("RGB", (9, 9), "red").save(pipe, format="PNG")

    (tmp_path / "one").mkdir()
    assert main(["embed", *argv, "-o", str(tmp_path / "one" / "E.npy"), "--no-progress"]) == 0
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "done by an earlier run" in done.stdout
    assert_same_output(out, tmp_path / "one" / "E.npy")
    assert not work.exists()

    fresh = tmp_path / "fresh" / "E.npy"
    fresh.parent.mkdir()
    command = [*TORCHRUN, "-m", "clip_core", "embed", *argv, "-o", str(fresh), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("embedded ") == 2  # every process reports the same result
    assert_same_output(fresh, tmp_path / "one" / "E.npy")


def test_a_job_one_process_left_unfinished_is_finished_by_two_and_the_reverse(tmp_path: Path, model_dir: Path) -> None:
    """One process embeds the first batch of three of the eight sources; two processes finish the other five, which
    no split by count cuts at the batches one process embeds: each takes whole batches (three sources, then the
    last two). A split by count fails here: the seventh image would be embedded with the sixth, where one process
    embeds it alone (beside the unreadable eighth), and on the CPU that changes its last bits."""
    folder = make_folder(tmp_path)
    argv = [str(folder), "--model", str(model_dir), "--batch-size", "3", "--shard-size", "3", "--workers", "0"]
    out = tmp_path / "mixed" / "E.safetensors"
    out.parent.mkdir()
    single = [sys.executable, "-m", "clip_core", "embed", *argv, "-o", str(out), "--no-progress"]
    killed = subprocess.run([*single, "--stop-after-shards", "1"], capture_output=True, text=True, env=ENV)
    assert killed.returncode != 0
    command = [*TORCHRUN, "-m", "clip_core", "embed", *argv, "-o", str(out), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    (tmp_path / "one").mkdir()
    assert main(["embed", *argv, "-o", str(tmp_path / "one" / "E.safetensors"), "--no-progress"]) == 0
    assert_same_output(out, tmp_path / "one" / "E.safetensors")


def test_webdataset_shards_are_a_source_each_key_a_row(tmp_path: Path, model_dir: Path) -> None:
    images = []
    for shard in range(2):
        with tarfile.open(tmp_path / f"{shard:05d}.tar", "w") as archive:
            for i in range(3):
                key = f"{shard:05d}{i:04d}"
                image = Image.new("RGB", (24, 18), (40 * i, 90 * shard, 200))
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                members = {f"{key}.png": buffer.getvalue(), f"{key}.txt": b"a caption", f"{key}.json": b"{}"}
                if (shard, i) == (1, 2):
                    members = {f"{key}.jpg": b"broken", f"{key}.txt": b"a caption"}
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
                images.append((key, image))
    out = tmp_path / "shards.npy"
    spec = f"{tmp_path}/{{00000..00001}}.tar"
    assert main(["embed", spec, "--model", str(model_dir), "-o", str(out), "--workers", "0", "--no-progress"]) == 0
    embeddings = read_embeddings(out)
    assert embeddings.labels == [key for key, _ in images[:5]]
    model = clip_core.load_checkpoint(model_dir).eval()
    pixels = clip_core.get_preprocess(model.card).batch([image for _, image in images[:5]])
    with torch.no_grad():
        expected = model.encode_image(pixels, normalize=True)
    torch.testing.assert_close(torch.as_tensor(embeddings.vectors), expected, rtol=1e-5, atol=1e-6)
    manifest = json.loads(manifest_path(out).read_text())
    assert [item["source"] for item in manifest["skipped"]] == [images[5][0]]

"""`clip embed` and the embedding job: images or texts to an embeddings file with its index and manifest.

Specifications: every readable image gives one row, in the order of the sources; unreadable files are skipped and
reported, never fatal; a job killed at any shard and run again writes the same file an uninterrupted run writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import clip_core
from clip_core.cli import main
from clip_core.embedding import embed_images, embed_texts, partial_folder
from clip_core.embedding.file import read_embeddings, write_embeddings
from clip_core.embedding.sources import find_images, read_image
from clip_core.errors import InputError

GOOD = {  # relative path -> (mode, size)
    "a.png": ("RGB", (40, 30)),
    "b.jpg": ("L", (20, 50)),
    "c.webp": ("RGBA", (33, 33)),
    "d.gif": ("P", (16, 64)),
    "nested/deeper/e.JPG": ("CMYK", (70, 20)),
    "nested/f.tif": ("RGB", (32, 32)),
    "nested/g.jpeg": ("RGB", (5, 3)),
}
BAD = {  # relative path -> content
    "broken.jpg": b"this is not an image",
    "empty.png": b"",
    "truncated.png": None,  # the first bytes of a real PNG
}
NOT_IMAGES = {"notes.txt": b"not listed", "data.safetensors": b"{}"}


def make_folder(root: Path, count: int | None = None) -> Path:
    """A folder of images in several modes and formats, some corrupt ones, and files that are not images."""
    folder = root / "photos"
    for index, (name, (mode, size)) in enumerate(list(GOOD.items())[:count]):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        generator = torch.Generator().manual_seed(index)
        values = torch.randint(
            0, 256, (size[0] * size[1] * len(Image.new(mode, (1, 1)).getbands()),), generator=generator
        )
        image = Image.frombytes(mode, size, bytes(values.to(torch.uint8).tolist()))
        if mode == "P":
            image.putpalette(list(range(256)) * 3)
        image.save(path)
    for name, content in {**BAD, **NOT_IMAGES}.items():
        data = content if content is not None else (folder / "a.png").read_bytes()[:80]
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved `tiny` model: the CLI loads it as a checkpoint, the tests load the same weights directly."""
    torch.manual_seed(1234)
    return clip_core.create_model("tiny").save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def model(model_dir: Path) -> clip_core.ClipModel:
    return clip_core.load_checkpoint(model_dir)


def embed(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["embed", "--workers", "0", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def direct_image_embeddings(model: clip_core.ClipModel, paths: list[str]) -> torch.Tensor:
    """What the model gives for these files, read with Pillow and preprocessed with the card's preprocessing."""
    pixels = clip_core.get_preprocess(model.card).batch([read_image(path) for path in paths])
    with torch.no_grad():
        return model.encode_image(pixels, normalize=True)


def sources(index: Path) -> list[str]:
    return [json.loads(line)["source"] for line in index.read_text().splitlines()]


def test_embeds_every_readable_image_in_source_order_and_reports_the_unreadable_ones(
    tmp_path: Path, model_dir: Path, model: clip_core.ClipModel, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_folder(tmp_path)
    out = tmp_path / "out.safetensors"
    status, stdout, _ = embed(capsys, str(folder), "--model", str(model_dir), "-o", str(out), "--batch-size", "3")
    assert status == 0
    good = sorted(str(folder / name) for name in GOOD)
    assert sources(tmp_path / "out.safetensors.index.jsonl") == good
    vectors = load_file(out)["embeddings"]
    assert vectors.dtype == torch.float32 and vectors.shape == (len(GOOD), 16)
    torch.testing.assert_close(vectors, direct_image_embeddings(model, good), rtol=0, atol=1e-6)
    assert f"embedded {len(GOOD)} images into {out} [{len(GOOD)} x 16]" in stdout
    assert f"skipped {len(BAD)} unreadable images:" in stdout
    for name in BAD:
        assert f"  {folder / name}: " in stdout
    manifest = json.loads((tmp_path / "out.safetensors.manifest.json").read_text())
    assert manifest["rows"] == len(GOOD) and manifest["modality"] == "image"
    assert [item["source"] for item in manifest["skipped"]] == sorted(str(folder / name) for name in BAD)
    assert manifest["model"]["fingerprint"].startswith("sha256:") and manifest["model"]["card"]["name"] == "tiny"
    assert manifest["options"] == {"normalize": True, "dtype": "float32"}
    assert not partial_folder(out).exists()


def test_unreadable_files_of_every_kind_are_skipped_with_a_reason(tmp_path: Path, model: clip_core.ClipModel) -> None:
    folder = make_folder(tmp_path, count=1)
    (folder / "dangling.jpg").symlink_to(folder / "gone.jpg")
    locked = folder / "locked.png"
    locked.write_bytes((folder / "a.png").read_bytes())
    locked.chmod(0)
    paths = [*find_images([folder]), str(folder / "missing.png")]
    result = embed_images(model, paths, tmp_path / "out.npy")
    reasons = {Path(item.source).name: item.error for item in result.skipped}
    assert reasons["broken.jpg"] == reasons["empty.png"] == "not an image file Pillow can read"
    assert "truncated" in reasons["truncated.png"]
    assert reasons["dangling.jpg"] == reasons["missing.png"] == "No such file or directory"
    if os.geteuid() != 0:  # root reads any file
        assert reasons["locked.png"] == "Permission denied"
    assert result.rows == len(paths) - len(reasons)


def test_a_killed_job_resumes_without_losing_or_repeating_a_source(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`clip embed` killed (SIGKILL, from outside) after three shards, then run again, writes what one run writes.

    The seventh source is a named pipe: reading it blocks the job right after its third shard is recorded, where
    this test kills it; then the pipe is replaced by an image for the rerun.
    """
    folder = make_folder(tmp_path)
    paths = find_images([folder])
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    listing = tmp_path / "sources.txt"
    listing.write_text("\n".join([*paths[:6], str(pipe), *paths[6:]]) + "\n")
    out = tmp_path / "resumed.safetensors"
    argv = [str(listing), "--model", str(model_dir), "-o", str(out), "--batch-size", "2", "--shard-size", "2"]
    env = {**os.environ, "CLIP_DISABLED_PLUGINS": "vit,resnet,text,losses"}  # faster start; `tiny` needs none
    job = subprocess.Popen([sys.executable, "-m", "clip_core", "embed", *argv, "--workers", "0"], env=env)
    work = partial_folder(out)
    deadline = time.monotonic() + 300
    while not (work / "progress.jsonl").exists() or len((work / "progress.jsonl").read_bytes().splitlines()) < 3:
        assert job.poll() is None and time.monotonic() < deadline, "the job ended or hung before its third shard"
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL
    assert sorted(path.name for path in work.glob("0*.safetensors")) == [f"00000{i}.safetensors" for i in (1, 2, 3)]
    assert len((work / "progress.jsonl").read_text().splitlines()) == 3
    assert not out.exists()
    with open(work / "progress.jsonl", "ab") as progress:  # a record the kill tore in half
        progress.write(b'{"shard": "000004.safetensors", "done": ["pho')
    pipe.unlink()
    Image.new("RGB", (9, 9), "red").save(pipe, format="PNG")

    status, stdout, _ = embed(capsys, *argv)
    assert status == 0 and "; 6 done by an earlier run" in stdout  # 3 shards of 2 sources
    status, _, _ = embed(capsys, *argv[:4], str(tmp_path / "straight.safetensors"), *argv[5:])
    assert status == 0
    resumed, straight = read_embeddings(out), read_embeddings(tmp_path / "straight.safetensors")
    assert (
        resumed.labels
        == straight.labels
        == [path for path in [*paths[:6], str(pipe), *paths[6:]] if Path(path).name not in BAD]
    )
    assert torch.equal(resumed.vectors, straight.vectors)
    assert resumed.manifest is not None and straight.manifest is not None
    assert resumed.manifest["skipped"] == straight.manifest["skipped"] and len(resumed.manifest["skipped"]) == 3
    assert not partial_folder(out).exists()


def test_an_interrupted_job_resumes_at_any_shard_in_process(tmp_path: Path, model: clip_core.ClipModel) -> None:
    """Stopped after shard k for every k, the rerun's file equals the uninterrupted one, bit for bit.

    One image per batch, so that every row is computed alone in every run; the first run loads images in workers.
    """
    folder = make_folder(tmp_path)
    paths = find_images([folder])
    expected = embed_images(model, paths, tmp_path / "expected.npy", batch_size=1, shard_size=3)
    reference = read_embeddings(expected.output)

    class Stop(Exception):
        pass

    def stop_after(k: int) -> Callable[[int], None]:
        def on_shard(written: int) -> None:
            if written == k:
                raise Stop

        return on_shard

    for k in (1, 2, 3):
        out = tmp_path / f"run{k}.npy"
        with pytest.raises(Stop):
            embed_images(model, paths, out, batch_size=1, shard_size=3, on_shard=stop_after(k), workers=2)
        result = embed_images(model, paths, out, batch_size=1, shard_size=3)
        assert result.resumed == 3 * k
        again = read_embeddings(out)
        assert again.entries == reference.entries
        assert torch.equal(again.vectors, reference.vectors)
        assert result.skipped == expected.skipped


def test_a_resumed_job_takes_in_sources_added_meanwhile_and_drops_removed_ones(
    tmp_path: Path, model: clip_core.ClipModel
) -> None:
    folder = make_folder(tmp_path, count=4)
    out = tmp_path / "out.safetensors"

    def stop(written: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_images(model, find_images([folder]), out, batch_size=2, shard_size=2, on_shard=stop)
    (folder / "a.png").unlink()
    Image.new("RGB", (9, 9), "red").save(folder / "zz.png")
    embed_images(model, find_images([folder]), out, batch_size=2, shard_size=2)
    result = read_embeddings(out)
    kept = sorted(str(folder / name) for name in ("b.jpg", "c.webp", "d.gif"))
    assert result.labels == [*kept, str(folder / "zz.png")]
    torch.testing.assert_close(result.vectors, direct_image_embeddings(model, result.labels), rtol=0, atol=1e-6)


def test_resuming_with_another_model_or_options_is_refused(
    tmp_path: Path, model_dir: Path, model: clip_core.ClipModel, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_folder(tmp_path, count=4)
    out = tmp_path / "out.safetensors"

    def stop(written: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_images(model, find_images([folder]), out, batch_size=1, shard_size=1, on_shard=stop)
    argv = [str(folder), "--model", str(model_dir), "-o", str(out)]
    status, _, err = embed(capsys, *argv, "--no-normalize")
    assert status == 2 and err.count("\n") == 1
    assert "refusing to resume the unfinished job in" in err and "options.normalize was true, now false" in err
    status, _, err = embed(capsys, *argv[:2], "tiny", *argv[3:])  # the same card, other weights
    assert status == 2 and "model.fingerprint was" in err
    status, _, err = embed(capsys, *argv, "--dtype", "bf16")
    assert status == 2 and 'options.dtype was "float32", now "bfloat16"' in err
    status, stdout, _ = embed(capsys, *argv, "--no-normalize", "--overwrite")
    assert status == 0 and "done by an earlier run" not in stdout
    assert json.loads((tmp_path / "out.safetensors.manifest.json").read_text())["options"]["normalize"] is False


def test_an_existing_output_is_replaced_only_with_overwrite(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_folder(tmp_path, count=2)
    argv = [str(folder), "--model", str(model_dir), "-o", str(tmp_path / "out.safetensors")]
    assert embed(capsys, *argv)[0] == 0
    status, _, err = embed(capsys, *argv)
    assert status == 2 and err == f"clip: error: {tmp_path / 'out.safetensors'} exists; pass --overwrite " + (
        "(overwrite=True) to replace it\n"
    )
    assert embed(capsys, *argv, "--overwrite")[0] == 0


def test_texts_are_embedded_one_row_per_line_skipping_blank_lines(
    tmp_path: Path, model_dir: Path, model: clip_core.ClipModel, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = ["a photo of a cat", "a dog", "  ", "a photo of a cat", "émoji 🐈 and ünïcode", ""]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "texts.safetensors"
    status, stdout, _ = embed(
        capsys, "--texts", str(tmp_path / "texts.txt"), "--model", str(model_dir), "-o", str(out), "--batch-size", "2"
    )
    assert status == 0 and "embedded 4 texts" in stdout
    kept = [text for text in texts if text.strip()]
    result = read_embeddings(out)
    assert result.entries == [{"row": row, "text": text} for row, text in enumerate(kept)]
    with torch.no_grad():
        expected = model.encode_text(clip_core.get_tokenizer(model.card)(kept), normalize=True)
    torch.testing.assert_close(result.vectors, expected, rtol=0, atol=1e-6)
    assert result.manifest is not None and result.manifest["modality"] == "text"


def test_npy_output_holds_the_same_rows_as_safetensors(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_folder(tmp_path, count=3)
    for name in ("out.npy", "out.safetensors"):
        assert embed(capsys, str(folder), "--model", str(model_dir), "-o", str(tmp_path / "formats" / name))[0] == 0
    matrix = np.load(tmp_path / "formats" / "out.npy", allow_pickle=False)
    assert matrix.dtype == np.float32 and matrix.shape == (3, 16)
    assert np.array_equal(matrix, load_file(tmp_path / "formats" / "out.safetensors")["embeddings"].numpy())
    assert read_embeddings(tmp_path / "formats" / "out.npy").labels == sorted(
        str(folder / name) for name in list(GOOD)[:3]
    )


@pytest.mark.parametrize("name", ["out.npy", "out.safetensors"])
def test_embeddings_written_block_by_block_are_the_files_numpy_and_safetensors_write(tmp_path: Path, name: str) -> None:
    """A job's output is streamed from its shards; the bytes are those of `np.save` / `save_file` of the whole
    matrix, and blocks that do not add up to the index are refused before anything replaces the output."""
    matrix = torch.randn(10, 6, generator=torch.Generator().manual_seed(0))
    entries = [{"text": str(i)} for i in range(10)]
    streamed, whole = tmp_path / "streamed" / name, tmp_path / "whole" / name
    write_embeddings(streamed, iter([matrix[:4], matrix[4:5], matrix[5:]]), entries, {}, dim=6)
    whole.parent.mkdir()
    if name.endswith(".npy"):
        np.save(whole, matrix.numpy(), allow_pickle=False)
    else:
        save_file({"embeddings": matrix}, whole, metadata={"format": "clip-embeddings/1"})
    assert streamed.read_bytes() == whole.read_bytes()
    assert torch.equal(read_embeddings(streamed).vectors, matrix)
    before = streamed.read_bytes()
    with pytest.raises(InputError, match="the embeddings blocks held 9 rows, the index 10"):
        write_embeddings(streamed, iter([matrix[:9]]), entries, {}, dim=6)
    with pytest.raises(InputError, match=r"embeddings block of shape \(10, 5\) after 0 of 10 rows x 6"):
        write_embeddings(streamed, iter([matrix[:, :5]]), entries, {}, dim=6)
    assert streamed.read_bytes() == before and sorted(p.name for p in streamed.parent.iterdir()) == sorted(
        [name, f"{name}.index.jsonl", f"{name}.manifest.json"]
    )


def test_no_normalize_keeps_raw_embeddings_and_bf16_stays_close(
    tmp_path: Path, model: clip_core.ClipModel, capsys: pytest.CaptureFixture[str], model_dir: Path
) -> None:
    folder = make_folder(tmp_path, count=3)
    paths = [str(folder / name) for name in sorted(GOOD)[:3]]
    raw = read_embeddings(embed_images(model, paths, tmp_path / "raw.npy", normalize=False).output).vectors
    with torch.no_grad():
        expected = model.encode_image(clip_core.get_preprocess(model.card).batch([read_image(p) for p in paths]))
    torch.testing.assert_close(raw, expected, rtol=0, atol=1e-5)
    status, _, _ = embed(
        capsys, str(folder), "--model", str(model_dir), "-o", str(tmp_path / "bf16.npy"), "--dtype", "bf16"
    )
    assert status == 0
    bf16 = read_embeddings(tmp_path / "bf16.npy")
    assert bf16.manifest is not None and bf16.manifest["options"]["dtype"] == "bfloat16"
    assert bf16.vectors.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(bf16.vectors, expected, dim=-1)
    assert bool((cosine > 0.99).all()) and torch.allclose(bf16.vectors.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_sources_may_be_files_globs_and_list_files_each_taken_once(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    listing = folder / "nested" / "list.txt"
    listing.write_text("# images to embed\n\nf.tif\n../a.png\n" + str(folder / "b.jpg") + "\n")
    found = find_images([listing, str(folder / "*.png"), folder / "a.png", str(folder / "**" / "*.jpeg")])
    assert found == [
        str(folder / "nested" / "f.tif"),
        str(folder / "a.png"),  # "../a.png" from the list file's folder
        str(folder / "b.jpg"),
        str(folder / "empty.png"),
        str(folder / "truncated.png"),
        str(folder / "nested" / "g.jpeg"),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{tmp}/missing.jpg"], "{tmp}/missing.jpg: no such file or folder"),
        (["{tmp}/empty"], "{tmp}/empty: no image files in this folder"),
        (["{tmp}/*.jpg"], "{tmp}/*.jpg: no image files match this pattern"),
        (["{tmp}/empty", "-o", "{tmp}/out.csv"], "{tmp}/out.csv: an embeddings file ends in .safetensors or .npy"),
        (["--texts", "{tmp}/missing.txt"], "{tmp}/missing.txt: no such file"),
        (["--texts", "{tmp}/blank.txt"], "{tmp}/blank.txt: no texts in this file"),
        (["{tmp}/empty", "--texts", "{tmp}/blank.txt"], "name images (files, folders, globs, list files) or --texts"),
        ([], "name images (files, folders, globs, list files) or --texts FILE, not both or neither"),
        (["{tmp}/list.txt"], "{tmp}/list.txt: this list file names no images"),
        (["{tmp}/one.png", "--model", "{tmp}/missing.safetensors"], "{tmp}/missing.safetensors: no such checkpoint"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no images here")
    (tmp_path / "blank.txt").write_text("\n  \n")
    (tmp_path / "list.txt").write_text("# nothing\n")
    Image.new("RGB", (8, 8)).save(tmp_path / "one.png")
    args = [arg.format(tmp=tmp_path) for arg in argv]
    args += [] if "--model" in args else ["--model", "tiny"]
    args += [] if "-o" in args else ["-o", str(tmp_path / "out.npy")]
    status, out, err = embed(capsys, *args)
    assert status == 2 and out == ""
    [error] = [line for line in err.splitlines() if "has random weights" not in line]
    assert error.startswith("clip: error: ") and message.format(tmp=tmp_path) in error


def test_embed_texts_library_call_matches_the_command(tmp_path: Path, model: clip_core.ClipModel) -> None:
    result = embed_texts(model, ["one", "two", "three"], tmp_path / "t.safetensors", batch_size=2, shard_size=1)
    assert (result.rows, result.embed_dim, result.skipped, result.resumed) == (3, 16, (), 0)
    assert read_embeddings(result.output).labels == ["one", "two", "three"]


def test_a_second_job_on_the_same_output_is_refused_while_the_first_runs(
    tmp_path: Path, model: clip_core.ClipModel
) -> None:
    from filelock import FileLock

    folder = make_folder(tmp_path, count=2)
    out = tmp_path / "out.npy"
    partial_folder(out).mkdir()
    with FileLock(partial_folder(out) / "lock"), pytest.raises(InputError, match="another job is writing"):
        embed_images(model, find_images([folder]), out)
    assert embed_images(model, find_images([folder]), out).rows == 2  # the lock is gone with its holder


def test_nothing_readable_is_an_error_and_writes_nothing_while_some_readable_keeps_exit_0(
    tmp_path: Path, model_dir: Path, model: clip_core.ClipModel, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_folder(tmp_path, count=1)
    bad = [str(folder / name) for name in BAD]
    out = tmp_path / "none.safetensors"
    status, stdout, err = embed(capsys, *bad, "--model", str(model_dir), "-o", str(out))
    assert status == 2 and stdout == ""
    assert err == (
        f"clip: error: none of the {len(BAD)} images could be read (the first: {bad[0]}: not an image file Pillow "
        f"can read); nothing written to {out}\n"
    )
    assert list(tmp_path.glob("none.*")) == []  # no output, index, manifest or work folder
    with pytest.raises(InputError, match="none of the 3 images could be read"):
        embed_images(model, bad, out)
    status, stdout, _ = embed(capsys, *bad, str(folder / "a.png"), "--model", str(model_dir), "-o", str(out))
    assert status == 0 and "[1 x 16]" in stdout and f"skipped {len(BAD)} unreadable images:" in stdout


def test_only_a_torn_last_progress_line_is_dropped_other_damage_leaves_the_log_alone(
    tmp_path: Path, model: clip_core.ClipModel
) -> None:
    """A torn last record is redone; a corrupt record before the last, or a shard that cannot be read, never makes
    the job rewrite its progress log (discarding the records after it): an error, or the I/O error itself."""
    folder = make_folder(tmp_path, count=4)
    paths = find_images([folder])
    out = tmp_path / "out.safetensors"

    def stop(written: int) -> None:
        if written == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_images(model, paths, out, batch_size=1, shard_size=1, on_shard=stop)
    log = partial_folder(out) / "progress.jsonl"
    records = log.read_bytes().splitlines(keepends=True)
    assert len(records) == 3

    log.write_bytes(records[0] + b'{"shard": "000002.saf\n' + records[2])  # the middle record corrupt
    with pytest.raises(InputError, match=r"progress.jsonl: line 2 is not a progress record; pass --overwrite"):
        embed_images(model, paths, out, batch_size=1, shard_size=1)
    assert log.read_bytes() == records[0] + b'{"shard": "000002.saf\n' + records[2]

    shard = partial_folder(out) / "000002.safetensors"
    saved = shard.read_bytes()
    shard.unlink()
    shard.mkdir()  # reading it is an I/O error (ENODEV), not a torn record
    log.write_bytes(b"".join(records))
    with pytest.raises(OSError):
        embed_images(model, paths, out, batch_size=1, shard_size=1)
    assert log.read_bytes() == b"".join(records)
    shard.rmdir()
    shard.write_bytes(saved)

    log.write_bytes(b"".join(records) + b'{"shard": "000004.safetensors", "do')  # torn by a kill
    result = embed_images(model, paths, out, batch_size=1, shard_size=1)
    assert result.resumed == 3 and result.rows == 4


def test_a_preprocessing_bug_propagates_while_a_malformed_image_is_a_skip(tmp_path: Path) -> None:
    from clip_core.embedding.sources import load_batch

    Image.new("RGB", (9, 9)).save(tmp_path / "one.png")
    path = str(tmp_path / "one.png")

    def malformed(image: Image.Image) -> torch.Tensor:
        raise OSError("image file is truncated")

    def buggy(image: Image.Image) -> torch.Tensor:
        raise TypeError("unsupported operand type(s)")

    assert load_batch([path], malformed)[2] == [(path, "OSError: image file is truncated")]
    with pytest.raises(TypeError, match="unsupported operand"):
        load_batch([path], buggy)

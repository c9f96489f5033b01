"""Video I/O: round trips keep size, frame count and fps; audio survives; writes are atomic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import corpus
import cv2
import numpy as np
import pytest

from ldf_vfi.data.synthetic import moving_shapes_video
from ldf_vfi.errors import InputError, first_line
from ldf_vfi.io import (
    FrameReader,
    VideoWriter,
    check_input_path,
    iter_frames,
    list_inputs,
    natural_sort_key,
    probe,
    read_frames,
    write_frames_png,
)
from ldf_vfi.io import writer as writer_module
from ldf_vfi.io.writer import check_output_path, check_video_size, make_parents

from conftest import DEMO_VIDEO, REPO_ROOT, write_video


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001), Fraction(120)])
def test_mp4_round_trip_keeps_size_count_and_exact_fps(tmp_path, fps):
    frames = moving_shapes_video(7, 48, 64, seed=1)
    path = write_video(tmp_path / "clip.mp4", frames, fps=fps)
    info = probe(path)
    assert (info.width, info.height, info.num_frames, info.fps, info.kind) == (64, 48, 7, fps, "video")
    decoded = read_frames(path)
    assert len(decoded) == 7
    # crf 0 is lossless in YUV; 4:2:0 chroma costs some PSNR on this colourful texture, but each decoded
    # frame is nearest to its own original (no shift, no duplicate).
    assert min(_psnr(a, b) for a, b in zip(frames, decoded)) > 25
    for index, got in enumerate(decoded):
        assert int(np.argmax([_psnr(got, original) for original in frames])) == index


def test_png_folder_round_trip_is_exact_and_naturally_sorted(tmp_path):
    frames = moving_shapes_video(12, 33, 47, seed=2)  # odd sizes are fine for PNG
    names = [f"frame{i}.png" for i in range(12)]  # frame10 must sort after frame9
    write_frames_png(tmp_path / "frames", frames, names=names)
    info = probe(tmp_path / "frames", fps=Fraction(24000, 1001))
    assert (info.width, info.height, info.num_frames, info.kind) == (47, 33, 12, "frames")
    assert info.fps == Fraction(24000, 1001)
    for original, loaded in zip(frames, iter_frames(tmp_path / "frames")):
        np.testing.assert_array_equal(original, loaded)
    assert probe(tmp_path / "frames").fps == 30  # default for frame folders
    assert sorted(names, key=natural_sort_key)[:3] == ["frame0.png", "frame1.png", "frame2.png"]
    assert sorted(names, key=natural_sort_key)[-1] == "frame11.png"


def test_png_folder_writer_is_atomic_and_exact(tmp_path):
    frames = moving_shapes_video(3, 16, 24, seed=5)
    with VideoWriter(tmp_path / "out_frames", 25) as writer:
        for frame in frames:
            writer.write(frame)
        assert not (tmp_path / "out_frames").exists()  # nothing under the final name before close
    assert sorted(p.name for p in (tmp_path / "out_frames").iterdir()) == [
        "00000000.png",
        "00000001.png",
        "00000002.png",
    ]
    np.testing.assert_array_equal(read_frames(tmp_path / "out_frames")[2], frames[2])


def test_odd_sizes_are_padded_to_even_for_h264(tmp_path):
    frames = moving_shapes_video(3, 31, 45, seed=6)
    info = probe(write_video(tmp_path / "odd.mp4", frames))
    assert (info.width, info.height) == (46, 32)
    decoded = read_frames(tmp_path / "odd.mp4")[1]
    assert _psnr(decoded[:31, :45], frames[1]) > 25
    np.testing.assert_allclose(decoded[31].astype(int), decoded[30].astype(int), atol=12)  # replicated row


def test_audio_is_copied(tmp_path, small_video_with_audio):
    assert probe(DEMO_VIDEO).has_audio
    assert probe(small_video_with_audio).has_audio
    import av

    with av.open(str(small_video_with_audio)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        packets = sum(1 for p in container.demux(audio) if p.size)
    assert packets > 10


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(target, 25) as writer:
            for frame in moving_shapes_video(3, 32, 32):
                writer.write(frame)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_failed_rewrite(tmp_path):
    target = write_video(tmp_path / "out.mp4", moving_shapes_video(4, 32, 32))
    before = target.read_bytes()
    with pytest.raises(ValueError):
        with VideoWriter(target, 25) as writer:
            writer.write(moving_shapes_video(1, 32, 32)[0])
            writer.write(np.zeros((16, 16, 3), np.uint8))  # wrong size
    assert target.read_bytes() == before


def test_killed_writer_leaves_no_file_under_the_final_name(tmp_path):
    target = tmp_path / "killed.mp4"
    script = (
        "import sys, numpy as np\n"
        "from ldf_vfi.io import VideoWriter\n"
        f"w = VideoWriter({str(target)!r}, 25)\n"
        "rng = np.random.default_rng(0)\n"
        "for i in range(100000):\n"
        "    w.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))\n"
        "    if i == 5: print('writing', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert all(name.startswith(".killed.") and ".partial" in name for name in leftovers)


def test_list_inputs_expands_folders(tmp_path, small_video):
    assert list_inputs(small_video) == [small_video]
    folder = tmp_path / "batch"
    folder.mkdir()
    write_video(folder / "b10.mp4", moving_shapes_video(2, 16, 16))
    write_video(folder / "b2.mp4", moving_shapes_video(2, 16, 16))
    write_frames_png(folder / "c_frames", moving_shapes_video(2, 16, 16))
    (folder / "notes.txt").write_text("not a video")
    assert [p.name for p in list_inputs(folder)] == ["b2.mp4", "b10.mp4", "c_frames"]
    assert list_inputs(folder / "c_frames") == [folder / "c_frames"]


def test_read_frames_by_index_with_both_backends(small_video):
    everything = read_frames(small_video, backend="pyav")
    for backend in ("pyav", "decord"):
        picked = read_frames(small_video, indices=[4, 0, 4], backend=backend)
        for got, index in zip(picked, [4, 0, 4]):
            assert _psnr(got, everything[index]) > 40
    with pytest.raises(InputError, match="out of range"):
        read_frames(small_video, indices=[99], backend="pyav")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.mp4", "not found"),
        (
            lambda d: (d / "garbage.mp4").write_bytes(os.urandom(2048)) and d / "garbage.mp4",
            "cannot read video",
        ),
        (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "cannot read video"),
        (lambda d: (d / "empty_dir").mkdir() or d / "empty_dir", "no videos"),
        (
            lambda d: cv2.imwrite(str(d / "one.png"), np.zeros((4, 4, 3), np.uint8)) and d / "one.png",
            "single image",
        ),
    ],
)
def test_bad_inputs_raise_one_line_input_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        list_inputs(path)
        probe(path)
    assert "\n" not in str(info.value)


def test_mixed_frame_sizes_in_a_folder_are_reported(tmp_path):
    folder = tmp_path / "mixed"
    write_frames_png(folder, [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)])
    with pytest.raises(InputError, match="00000001.png"):
        list(iter_frames(folder))


# -- paths, timestamps, orientation, damage (issue: every input gets a correct output or one clear error) ----


def test_input_paths_are_checked_as_typed(tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_shapes_video(2, 16, 16))
    assert check_input_path(video) == video and check_input_path(str(tmp_path) + "/") == tmp_path
    os.mkfifo(tmp_path / "pipe")
    cases = {
        "": "input path is empty",
        "   ": "input path is empty",
        f"{video}/": "ends with '/' but .* is a file",
        str(video / "inner.mp4"): "a part of it is a file",
        str(tmp_path / "missing.mp4"): "not found",
        str(tmp_path / "pipe"): "is a named pipe",
        "/dev/null": "is a character device",
    }
    for text, message in cases.items():
        with pytest.raises(InputError, match=message):
            check_input_path(text)
        with pytest.raises(InputError, match=message):
            probe(text)  # probe checks first: opening the pipe would block


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_input_is_refused(tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_shapes_video(2, 16, 16))
    video.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        check_input_path(video)


@pytest.mark.parametrize("rotation", [0, 90, 180, -90])
@pytest.mark.parametrize("hflip", [False, True])
def test_display_matrix_is_applied_to_frames(tmp_path, rotation, hflip):
    """Every orientation a display matrix can hold (four turns, mirrored or not) comes out as shown."""
    shown = moving_shapes_video(2, 48, 32, seed=7)  # portrait, 32 wide
    stored = [np.ascontiguousarray(np.rot90(f[:, ::-1] if hflip else f, -rotation // 90)) for f in shown]
    path = corpus.encode(tmp_path / "r.mp4", stored, rotation=rotation, hflip=hflip)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (32, 48, rotation % 360)
    for expected, got in zip(shown, FrameReader(path)):
        assert got.image.shape == (48, 32, 3) and _psnr(got.image, expected) > 40


def test_frames_carry_their_real_times_and_the_clip_its_end(tmp_path):
    frames = moving_shapes_video(5, 32, 32)
    times = [Fraction(t, 30) for t in (0, 1, 3, 4, 9)]
    for name in ("v.mp4", "v.mkv", "v.mov"):
        path = tmp_path / name
        with VideoWriter(path, 30, crf=0, preset="ultrafast", time_base=Fraction(1, 30)) as writer:
            for frame, time in zip(frames, times):
                writer.write(frame, time)
            writer.close(end_time=Fraction(12, 30))  # the last frame is shown for 3/30 s
        reader = FrameReader(path)
        got = [f.time for f in reader]
        tolerance = Fraction(1, 1000) if name.endswith(".mkv") else 0  # Matroska stores milliseconds
        assert all(abs(a - b) <= tolerance for a, b in zip(got, times)) and reader.frames_read == 5
        assert reader.end_time == Fraction(2, 5)
    with pytest.raises(ValueError, match="must increase"):
        with VideoWriter(tmp_path / "w.mp4", 30) as writer:
            writer.write(frames[0], Fraction(1, 30))
            writer.write(frames[1], Fraction(1, 30))


def test_nominal_rate_is_not_lowered_by_a_long_last_frame(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, Fraction(30000, 1001)) as writer:
        for frame in moving_shapes_video(3, 16, 16):
            writer.write(frame)
        writer.close(end_time=Fraction(10 * 1001, 30000))
    assert probe(path).fps == Fraction(30000, 1001)  # the container's average says 3 frames in 1/3 s


def test_decoding_errors_are_reported_with_how_far_it_got(tmp_path):
    for path, message in (
        (corpus.truncated_video(tmp_path), "damaged: decoding stopped after 20 of 30 frames"),
        (corpus.zeroed_video(tmp_path), "damaged: decoding stopped after 1 of 12 frames"),
    ):
        probe(path)  # the first frame is fine
        with pytest.raises(InputError, match=message) as info:
            list(FrameReader(path))
        assert "Errno" not in str(info.value)


def test_writer_creates_folders_lazily_and_removes_them_on_failure(tmp_path):
    target = tmp_path / "a" / "b" / "out.mp4"
    writer = VideoWriter(target, 25)
    assert not (tmp_path / "a").exists()  # nothing before the first frame
    with pytest.raises(RuntimeError, match="boom"):
        with writer:
            writer.write(moving_shapes_video(1, 16, 16)[0])
            assert (tmp_path / "a" / "b").is_dir()
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "kept" / "new" / "frames", 25) as writer:
            writer.write(moving_shapes_video(1, 16, 16)[0])
            raise RuntimeError
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and not any((tmp_path / "kept").iterdir())


def test_output_paths_are_checked_without_leaving_anything(tmp_path):
    afile = tmp_path / "file.mp4"
    afile.write_bytes(b"x")
    (tmp_path / "dir.mp4").mkdir()
    check_output_path(tmp_path / "new" / "deeper" / "pred.mp4", video=True)
    assert sorted(tmp_path.iterdir()) == [tmp_path / "dir.mp4", afile]  # tried, then removed
    for path, video, message in (
        (afile / "pred.mp4", True, "file.mp4' is a file, not a folder"),
        (afile / "sub" / "pred", False, "file.mp4' is a file, not a folder"),
        (tmp_path / "dir.mp4", True, "a folder of that name exists"),
        (afile, False, "it is a file, not a folder"),
    ):
        with pytest.raises(InputError, match=message):
            check_output_path(path, video=video)
    with pytest.raises(InputError, match="too large for an H.264 video"):
        check_video_size(20000, 16)


def test_error_lines_have_no_raw_codes(tmp_path):
    import av

    assert first_line(PermissionError(13, "Permission denied", "/x/out")) == "Permission denied: '/x/out'"
    try:
        av.open(str(write_garbage(tmp_path)))
    except av.error.FFmpegError as exc:
        assert first_line(exc) == "Invalid data found when processing input"


def write_garbage(folder):
    path = folder / "garbage.mp4"
    path.write_bytes(b"\x00" * 4096)
    return path


def test_make_parents_tolerates_other_processes_sharing_the_output_folder(tmp_path, monkeypatch):
    """Ranks share --output_dir: a folder made meanwhile by another process is used, not claimed (so it is
    never removed by us), and a parent that another process removed between our look and our mkdir is made
    again."""
    shared = tmp_path / "out"
    target = shared / "b" / "pred.mp4"
    real_missing = writer_module.missing_parents
    calls = []

    def racing_missing(path):
        missing = real_missing(path)
        calls.append(len(missing))
        if len(calls) == 1:
            shared.mkdir()  # another rank made out/ after we looked: our mkdir of out/ meets FileExistsError
        elif len(calls) == 2:
            return [shared / "gone" / "x"]  # a parent vanished meanwhile: mkdir raises FileNotFoundError
        return missing

    monkeypatch.setattr(writer_module, "missing_parents", racing_missing)
    shared_created = make_parents(target)
    assert shared_created == [shared / "b"]  # out/ belongs to the other process
    monkeypatch.setattr(writer_module, "missing_parents", real_missing)
    writer_module.remove_created(shared_created)
    assert shared.is_dir() and not (shared / "b").exists()

    calls.clear()
    monkeypatch.setattr(writer_module, "missing_parents", racing_missing)
    shared.rmdir()
    calls.append(0)  # skip the first race: go straight to the vanished parent, then a clean retry
    assert make_parents(target) == [shared, shared / "b"]
    assert len(calls) == 3

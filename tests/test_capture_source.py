"""Frame sources: a video file stands in for a camera that delivers, vanishes and comes back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from capture_scenes import make_scene, write_video

from engine.capture.source import CameraReader, CameraState, FrameSource, SourceError, SourceKind, SourceSpec

DEMO = Path(__file__).resolve().parent.parent / "content" / "demo"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("0", SourceKind.INDEX),
        ("/dev/video2", SourceKind.DEVICE),
        ("rtsp://10.0.0.5/stream", SourceKind.URL),
        ("http://cam.local/video.mjpg", SourceKind.URL),
        ("shot.JPG", SourceKind.IMAGE),
        ("walk.mp4", SourceKind.VIDEO),
    ],
)
def test_source_kinds(text, kind):
    assert SourceSpec.parse(text).kind is kind


def test_missing_sources_say_what_to_check(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        FrameSource(str(tmp_path / "gone.avi"))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(SourceError, match="not an image"):
        FrameSource(str(tmp_path / "text.png"))
    with pytest.raises(SourceError, match="cannot be opened: not connected, busy"):
        FrameSource("/dev/video-art2mus-none")


def test_a_still_image_gives_copies(tmp_path):
    path = tmp_path / "shot.png"
    cv2.imwrite(str(path), make_scene(sorted(DEMO.glob("*.png"))[0], 1).image)
    with FrameSource(str(path)) as source:
        a, b = source.read(), source.read()
    assert a is not None and b is not None and a is not b
    a[:] = 0
    assert b.any(), "the consumer's frame is its own"


class _Recorder:
    def __init__(self):
        self.frames = 0
        self.states: list[tuple[CameraState, str]] = []
        self.lock = threading.Lock()

    def frame(self, frame: np.ndarray) -> None:
        with self.lock:
            self.frames += 1

    def state(self, state: CameraState, message: str) -> None:
        with self.lock:
            self.states.append((state, message))

    def wait(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out; states {self.states}, frames {self.frames}")


def test_reader_survives_the_camera_vanishing_and_coming_back(tmp_path):
    frames = [make_scene(sorted(DEMO.glob("*.png"))[2], 5).image[::2, ::2]] * 6
    video = write_video(tmp_path / "camera.avi", frames, fps=30)
    kept = video.read_bytes()
    seen = _Recorder()
    reader = CameraReader(str(video), seen.frame, seen.state, retry_seconds=0.2).start()
    try:
        seen.wait(lambda: seen.frames >= 3 and CameraState.LIVE in [s for s, _ in seen.states])
        video.unlink()  # the camera is unplugged: the file ends and cannot be opened again
        seen.wait(lambda: any(s is CameraState.LOST and "does not exist" in m for s, m in seen.states))
        frames_before = seen.frames
        video.write_bytes(kept)  # ... and plugged in again
        seen.wait(lambda: seen.frames > frames_before and seen.states[-1][0] is CameraState.LIVE)
        assert reader.reopened >= 1
    finally:
        reader.stop()


def test_reader_reports_a_camera_that_sends_only_black(tmp_path):
    video = write_video(tmp_path / "covered.avi", [np.zeros((120, 160, 3), np.uint8)] * 40, fps=30)
    seen = _Recorder()
    reader = CameraReader(str(video), seen.frame, seen.state, retry_seconds=0.2).start()
    try:
        seen.wait(lambda: any(s is CameraState.BLACK and "lens" in m for s, m in seen.states))
    finally:
        reader.stop()

"""Decoding real files: upright, presentation order, trimming, resampling."""

import av
import numpy as np
import pytest

from tests.conftest import real_video
from tests.conftest import REAL_VIDEOS
from tfrecords_tools.conversion import decoder as vd

RAW = vd.DecodeOptions(short_side=0)


def _plain_decode(path):
  """Frames and pts exactly as PyAV's decoder emits them, no processing."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    pairs = [(f.pts, f.to_ndarray(format='rgb24'), f.rotation)
             for f in container.decode(stream)]
  return pairs


@pytest.mark.parametrize('name', [n for n, e in REAL_VIDEOS.items()
                                  if e['status'] == 'ok'])
def test_frame_counts_of_real_files(name):
  decoded = vd.decode_video(real_video(name), RAW)
  assert decoded.error is None
  assert len(decoded.frames) == REAL_VIDEOS[name]['frames']
  assert len(decoded.timestamps_us) == len(decoded.frames)
  # Presentation times strictly increase, whatever the container stored.
  assert all(b > a for a, b in zip(decoded.timestamps_us,
                                   decoded.timestamps_us[1:]))


def test_rotated_video_comes_out_upright():
  path = real_video('rotated_90.mov')
  decoded = vd.decode_video(path, RAW)
  height, width = decoded.frames[0].shape[:2]
  assert (width, height) == (320, 568)
  raw = _plain_decode(path)
  assert raw[0][2] == -90 and raw[0][1].shape[:2] == (320, 568)
  # rotation -90 = the display turns the stored picture 90 degrees clockwise.
  np.testing.assert_array_equal(decoded.frames[0], np.rot90(raw[0][1], k=-1))
  # Resizing happens in display orientation: the short side is the width.
  small = vd.decode_video(path, vd.DecodeOptions(short_side=128))
  assert small.frames[0].shape[:2] == (227, 128)


def test_unordered_pts_file_comes_out_in_presentation_order():
  path = real_video('unordered_pts.mov')
  with av.open(path) as container:
    packet_pts = [p.pts for p in container.demux(video=0) if p.pts is not None]
    time_base = container.streams.video[0].time_base
  assert packet_pts != sorted(packet_pts), 'file no longer has the hard case'
  decoded = vd.decode_video(path, RAW)
  expected = [int(round(float(p * time_base) * 1e6))
              for p in sorted(packet_pts)]
  assert decoded.timestamps_us == expected


def test_avi_with_nonmonotonic_pts_keeps_decoder_order():
  path = real_video('mmaction2_test.avi')
  raw = _plain_decode(path)
  pts = [p for p, _, _ in raw]
  assert pts != sorted(pts), 'file no longer has non-monotonic pts'
  decoded = vd.decode_video(path, RAW)
  # Sorting by these pts would shuffle frames; we keep the decoder's order.
  for ours, (_, frame, _) in zip(decoded.frames, raw):
    np.testing.assert_array_equal(ours, frame)


def test_corrupt_file_returns_frames_before_the_error():
  decoded = vd.decode_video(real_video('corrupted.mp4'), RAW)
  assert decoded.error_type == 'InvalidDataError'
  assert 'Invalid data' in decoded.error
  assert len(decoded.frames) == 28


def test_short_side_resize_keeps_aspect():
  decoded = vd.decode_video(real_video('kinetics_arm_wrestling.mp4'),
                            vd.DecodeOptions(short_side=128))
  assert decoded.frames[0].shape == (128, 170, 3)  # 340x256 -> 170x128


@pytest.mark.parametrize('fps,expected', [(14.0, 140), (7.0, 70), (56.0, 560)])
def test_fps_resampling(fps, expected):
  decoded = vd.decode_video(real_video('kinetics_arm_wrestling.mp4'),
                            vd.DecodeOptions(fps=fps, short_side=64))
  assert abs(len(decoded.frames) - expected) <= 1
  assert decoded.fps == fps
  if fps < 28:
    # Downsampling keeps every (28 / fps)-th source frame.
    step = int(round(28 / fps))
    full = vd.decode_video(real_video('kinetics_arm_wrestling.mp4'),
                           vd.DecodeOptions(short_side=64))
    np.testing.assert_array_equal(decoded.frames[3], full.frames[3 * step])


def test_time_window_trims():
  decoded = vd.decode_video(real_video('kinetics_arm_wrestling.mp4'),
                            vd.DecodeOptions(short_side=64, start_s=2.0,
                                             end_s=5.0))
  assert abs(len(decoded.frames) - 3 * 28) <= 1
  assert abs(decoded.start_us - 2_000_000) <= 40_000
  assert abs(decoded.end_us - 5_000_000) <= 40_000
  full = vd.decode_video(real_video('kinetics_arm_wrestling.mp4'),
                         vd.DecodeOptions(short_side=64))
  np.testing.assert_array_equal(decoded.frames[0], full.frames[56])


def test_unreadable_and_missing(tmp_path):
  not_video = tmp_path / 'notes.mp4'
  not_video.write_text('this is not a video')
  with pytest.raises(vd.UnreadableVideoError, match='notes.mp4'):
    vd.decode_video(str(not_video), RAW)
  with pytest.raises(FileNotFoundError):
    vd.decode_video(str(tmp_path / 'nope.mp4'), RAW)


def test_output_size():
  assert vd.output_size(340, 256, 256) == (340, 256)
  assert vd.output_size(340, 256, 128) == (170, 128)
  assert vd.output_size(320, 568, 256) == (256, 454)
  assert vd.output_size(320, 568, 0) == (320, 568)


def _write_timed_video(path, times_s, size=32):
  """An .mp4 whose frame k is flat, red 20 + 11 (k % 20) and green
  20 + 11 (k // 20), shown from times_s[k] (millisecond pts: any frame
  rate, variable included)."""
  import fractions  # pylint: disable=g-import-not-at-top
  with av.open(str(path), mode='w') as container:
    stream = container.add_stream('mpeg4', rate=fractions.Fraction(
        round(1 / (times_s[1] - times_s[0])), 1))
    stream.width = stream.height = size
    stream.pix_fmt = 'yuv420p'
    stream.bit_rate = 20_000_000
    stream.codec_context.time_base = fractions.Fraction(1, 1000)
    for k, t in enumerate(times_s):
      image = np.full((size, size, 3), 20, np.uint8)
      image[..., 0] += 11 * (k % 20)
      image[..., 1] += 11 * (k // 20)
      frame = av.VideoFrame.from_ndarray(image, 'rgb24')
      frame.pts = int(round(t * 1000))
      frame.time_base = fractions.Fraction(1, 1000)
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return str(path)


def _source_indices(decoded):
  return [int(round((f[..., 1].mean() - 20) / 11)) * 20 +
          int(round((f[..., 0].mean() - 20) / 11)) for f in decoded.frames]


def _on_screen(times_s, tick):
  """Index of the last source frame shown at or before `tick` (the viewer's
  rule), computed from the file's own timestamps."""
  return max(k for k, t in enumerate(times_s) if t <= tick + 1e-6)


@pytest.mark.parametrize('start,end', [(0.93, 3.03), (1.0, 2.0), (0.0, 1.55),
                                       (2.21, 2.9)])
def test_low_frame_rate_resamples_by_the_frame_on_screen(tmp_path, start,
                                                         end):
  # 6 fps, as a real AVA movie clip: at 0.93 s the frame shown is the
  # one from 0.833 s (index 5), not the first one after 0.93 s.
  times = [k / 6 for k in range(20)]
  path = _write_timed_video(tmp_path / 'six_fps.mp4', times)
  decoded = vd.decode_video(path, vd.DecodeOptions(
      fps=10, short_side=0, start_s=start, end_s=end))
  ticks = [start + k / 10 for k in range(int(round((end - start) * 10)))]
  ticks = [t for t in ticks if t < end - 1e-6]
  assert _source_indices(decoded) == [_on_screen(times, t) for t in ticks]
  assert decoded.start_us == int(round(start * 1e6))


def test_variable_frame_rate_resamples_by_the_frame_on_screen(tmp_path):
  times = [0.0, 0.1, 0.5, 0.55, 0.6, 1.2, 1.25, 2.0, 2.4, 2.45]
  path = _write_timed_video(tmp_path / 'vfr.mp4', times)
  # The file's own timestamps, as PyAV reads them (the muxer may round).
  read = [t / 1e6 for t in vd.decode_video(path, RAW).timestamps_us]
  assert len(read) == len(times)
  for start in (0.0, 0.3, 1.21):
    decoded = vd.decode_video(path, vd.DecodeOptions(
        fps=10, short_side=0, start_s=start, end_s=2.5))
    ticks = [start + k / 10 for k in range(30)
             if start + k / 10 < 2.5 - 1e-6]
    # The last frame (2.45 s) is on screen for one period of the stream's
    # nominal rate after it; ticks past that have no frame.
    last = read[-1] + 1 / 10
    ticks = [t for t in ticks if t < last - 1e-6]
    assert _source_indices(decoded) == [_on_screen(read, t) for t in ticks]


def test_trimming_at_the_source_rate_starts_with_the_frame_on_screen(
    tmp_path):
  times = [k / 6 for k in range(20)]
  path = _write_timed_video(tmp_path / 'six_fps.mp4', times)
  decoded = vd.decode_video(path, vd.DecodeOptions(short_side=0, start_s=0.93,
                                                   end_s=2.0))
  # Frame 5 (0.833 s) is on screen at 0.93 s, then 6..11 (1.0 .. 1.83 s).
  assert _source_indices(decoded) == [5, 6, 7, 8, 9, 10, 11]

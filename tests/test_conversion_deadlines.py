"""A video that never finishes: the worker is ended at its deadline, the
video retried once alone and then recorded as `timeout`, on the local pool
and on Beam's DirectRunner; the deadline follows the video's length."""

import dataclasses
import os
import signal
import time

import av
import pytest

from tests.conftest import real_video
from tfrecords_tools.conversion import deadlines
from tfrecords_tools.conversion import decoder
from tfrecords_tools.conversion import job
from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import video_frames

OPTIONS = video_frames.ConversionOptions(short_side=0)
# Fixed and short, so that the tests wait seconds, not minutes.
SHORT = deadlines.Deadline(base_s=3, per_second_s=0)


def test_the_flag_reads_auto_none_and_seconds():
  assert deadlines.parse('auto') == deadlines.DEFAULT
  assert deadlines.parse('none') is None
  assert deadlines.parse('45') == deadlines.Deadline(45.0, 0.0)
  for bad in ('soon', '0', '-3', 'inf', ''):
    with pytest.raises(ValueError, match='--deadline=.*expected'):
      deadlines.parse(bad)


def test_the_default_scales_with_the_seconds_converted():
  d = deadlines.DEFAULT
  assert d.seconds(10.0) - d.seconds(0.0) == pytest.approx(
      10 * d.per_second_s)
  assert d.seconds(None) == d.seconds(deadlines.UNKNOWN_DURATION_S)


def _armed_while_decoding(monkeypatch, options):
  """The seconds the decoder asks the alarm for, decoding options."""
  armed = []
  monkeypatch.setattr(deadlines, '_arm', armed.append)
  monkeypatch.setattr(deadlines, '_active', deadlines.Deadline(100, 7))
  decoder.decode_video(real_video('mmaction2_test.mp4'), options)
  return armed


def test_the_deadline_follows_the_window_or_the_video(monkeypatch):
  with av.open(real_video('mmaction2_test.mp4')) as container:
    seconds = container.duration / av.time_base  # FFmpeg's own reading
  assert _armed_while_decoding(monkeypatch, decoder.DecodeOptions(
      start_s=2.0, end_s=5.0)) == [100 + 7 * 3.0]
  whole = _armed_while_decoding(monkeypatch, decoder.DecodeOptions())
  assert whole == [pytest.approx(100 + 7 * seconds)]
  # A window past the end converts only what there is.
  assert _armed_while_decoding(monkeypatch, decoder.DecodeOptions(
      start_s=1.0, end_s=seconds + 50)) == [
          pytest.approx(100 + 7 * (seconds - 1.0))]


def _stalls_or_dies(task, options):
  """convert_video, except for marked paths: '#stall' sleeps forever,
  '#spin' spins holding the GIL, '#die' kills its process."""
  if task.path.endswith('#stall'):
    time.sleep(10_000)
  if task.path.endswith('#spin'):
    while True:
      pass
  if task.path.endswith('#die'):
    os.kill(os.getpid(), signal.SIGKILL)
  return video_frames.convert_video(task, options)


def _marked_plan(synthetic_videos, marks):
  tasks = job.read_tasks(os.path.join(synthetic_videos, 'val.csv'),
                         synthetic_videos, 'val')[:len(marks)]
  tasks = [dataclasses.replace(t, path=t.path + mark) if mark else t
           for t, mark in zip(tasks, marks)]
  specs = shards.plan_shards(sources.assign_labels(
      tasks, sources.build_label_map(tasks)), 2)
  return tasks, specs


@pytest.mark.timeout(300)
def test_videos_that_never_finish_are_timeout_rows(synthetic_videos,
                                                   tmp_path):
  marks = ['', '#stall', '', '#spin', '']
  tasks, specs = _marked_plan(synthetic_videos, marks)
  start = time.monotonic()
  rows = job.run_plan(specs, str(tmp_path), OPTIONS, 'local', 2,
                      convert_fn=_stalls_or_dies, deadline=SHORT)
  took = time.monotonic() - start
  by_id = {r['id']: r for r in rows}
  for task, mark in zip(tasks, marks):
    row = by_id[task.clip_id]
    if mark:
      assert row['status'] == decoder.TIMEOUT, row
      assert 'deadline' in row['error'] and 'twice' in row['error']
      assert SHORT.describe() in row['error']
    else:
      assert row['status'] == decoder.OK and row['frames'] > 0, row
  # Two videos, each ended twice at 3 s, two workers; the rest is start-up.
  assert took < 120, took


@pytest.mark.timeout(420)
def test_beam_reports_a_video_that_stalls_or_kills_its_decoder(
    synthetic_videos, tmp_path):
  marks = ['', '#die', '#stall', '']
  tasks, specs = _marked_plan(synthetic_videos, marks)
  rows = job.run_plan(specs, str(tmp_path), OPTIONS, 'beam', 1,
                      convert_fn=_stalls_or_dies, deadline=SHORT)
  statuses = {r['id']: r['status'] for r in rows}
  assert [statuses[t.clip_id] for t in tasks] == [
      decoder.OK, decoder.WORKER_DIED, decoder.TIMEOUT, decoder.OK]
  died = [r for r in rows if r['status'] == decoder.WORKER_DIED]
  assert 'killed by SIGKILL' in died[0]['error']

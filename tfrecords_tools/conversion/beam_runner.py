"""Runs the conversion as an Apache Beam pipeline.

The same per-video function as the local runner (`video_frames.convert_video`)
runs on Beam workers; results are grouped by shard and each shard is written by
`shards.write_shard` in task order. So a Beam run writes exactly the files a
local run writes, byte for byte, on DirectRunner here or Dataflow / Flink /
Spark with the user's pipeline options.

Each Beam worker converts in a process of its own (`worker_pool.Isolated`,
under the video's deadline), as the local pool does: a video that crashes
or stalls its decoder is retried once alone and then becomes a manifest row
(`worker_died`, `timeout`), instead of failing its bundle on every one of
Beam's retries and then the job.
"""

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging

from tfrecords_tools.conversion import deadlines
from tfrecords_tools.conversion import records
from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import task_call
from tfrecords_tools.conversion import video_frames
from tfrecords_tools.conversion import worker_pool


def _statuses(result) -> List[str]:
  """Manifest statuses of a converted video, or of a movie chunk's
  keyframes."""
  if hasattr(result, 'status'):
    return [result.status]
  return [clip[1] for clip in result.clips]


class _Convert:
  """Converts one task in this Beam worker's conversion process; Beam
  counters (`cvrl_convert`: one per status, and 'tasks') show the job's
  progress in the runner's UI and logs. Made a DoFn by `_convert_dofn`
  (apache_beam is imported only when a Beam job runs)."""

  def __init__(self, options, convert_fn, failure_fn, deadline):
    self._call = task_call.ConvertCall(convert_fn, options, deadline)
    self._on_failure = task_call.failure_handler(failure_fn, deadline)
    self._isolated = None

  def setup(self):
    self._isolated = worker_pool.Isolated()

  def teardown(self):
    if self._isolated is not None:
      self._isolated.close()

  def process(self, item):
    from apache_beam.metrics import Metrics  # pylint: disable=g-import-not-at-top
    shard_index, position, task = item
    result = self._isolated.run(self._call, task, self._on_failure)
    if isinstance(getattr(result, 'jpegs', None), records.Clip):
      # Frames spilled to the conversion process's disk travel in memory
      # to the worker that writes the shard.
      result = dataclasses.replace(result, jpegs=result.jpegs.load())
    Metrics.counter('cvrl_convert', 'tasks').inc()
    for status in _statuses(result):
      Metrics.counter('cvrl_convert', status).inc()
    yield shard_index, (position, result)


def _convert_dofn(*args):
  import apache_beam as beam  # pylint: disable=g-import-not-at-top

  class ConvertDoFn(_Convert, beam.DoFn):
    pass
  return ConvertDoFn(*args)


def _write(keyed, output_dir, specs, encode):
  shard_index, results = keyed
  ordered = [r for _, r in sorted(results, key=lambda pr: pr[0])]
  shards.write_shard(output_dir, specs[shard_index], ordered, encode)
  return shard_index


def run(specs: Sequence[shards.ShardSpec], pending: Sequence[int],
        output_dir: str, options, pipeline_args: List[str],
        convert_fn: Callable = video_frames.convert_video,
        encode: Callable = shards.encode_video,
        failure_fn: Callable = video_frames.failed_result,
        deadline: Optional[deadlines.Deadline] = deadlines.DEFAULT
        ) -> Dict[str, int]:
  """Converts the shards whose indices (into `specs`) are in `pending`;
  returns Beam's counters of the job (tasks, and one per status).

  Args:
    specs: the full shard plan.
    pending: indices of shards to write.
    output_dir: where shards go (local path or gs://).
    options: conversion options, passed to `convert_fn`.
    pipeline_args: Beam pipeline options, e.g. ['--runner=DataflowRunner',
      '--project=...']; empty means DirectRunner.
    convert_fn: (task, options) -> result, a module-level function (Beam
      pickles it): a video (default) or an AVA movie chunk.
    encode: result -> (records, manifest rows, frames), see `shards`.
    failure_fn: (task, status, error) -> the result of a task whose
      conversion process died or timed out twice.
    deadline: each task's time limit in its conversion process.
  """
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top

  items = [(i, pos, task) for i in pending
           for pos, task in enumerate(specs[i].tasks)]
  if not items:
    return {}
  opts = pipeline_options.PipelineOptions(pipeline_args)
  pipeline = beam.Pipeline(options=opts)
  _ = (pipeline
       | 'Videos' >> beam.Create(items)
       # Spread videos over workers; one video is the unit of work.
       | 'Spread' >> beam.Reshuffle()
       | 'Convert' >> beam.ParDo(_convert_dofn(options, convert_fn,
                                              failure_fn, deadline))
       | 'ByShard' >> beam.GroupByKey()
       | 'WriteShard' >> beam.Map(_write, output_dir, list(specs), encode))
  result = pipeline.run()
  result.wait_until_finish()
  from apache_beam.metrics.metric import MetricsFilter  # pylint: disable=g-import-not-at-top
  counters = {c.key.metric.name: c.committed for c in result.metrics().query(
      MetricsFilter().with_namespace('cvrl_convert'))['counters']}
  logging.info('beam counters (cvrl_convert): %s', counters)
  return counters

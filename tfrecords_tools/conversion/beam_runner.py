"""Runs the conversion as an Apache Beam pipeline.

The same per-video function as the local runner (`video_frames.convert_video`)
runs on Beam workers; results are grouped by shard and each shard is written by
`shards.write_shard` in task order. So a Beam run writes exactly the files a
local run writes, byte for byte, on DirectRunner here or Dataflow / Flink /
Spark with the user's pipeline options.
"""

import dataclasses
from typing import Callable, Dict, List, Sequence

from absl import logging

from tfrecords_tools.conversion import records
from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import video_frames


def _statuses(result) -> List[str]:
  """Manifest statuses of a converted video, or of a movie chunk's
  keyframes."""
  if hasattr(result, 'status'):
    return [result.status]
  return [clip[1] for clip in result.clips]


def _convert(item, options, convert_fn):
  """Converts one task; Beam counters (`cvrl_convert`: one per status, and
  'tasks') show the job's progress in the runner's UI and logs."""
  from apache_beam.metrics import Metrics  # pylint: disable=g-import-not-at-top
  shard_index, position, task = item
  result = convert_fn(task, options)
  if isinstance(getattr(result, 'jpegs', None), records.Clip):
    # Frames spilled to this worker's disk travel in memory to the worker
    # that writes the shard.
    result = dataclasses.replace(result, jpegs=result.jpegs.load())
  Metrics.counter('cvrl_convert', 'tasks').inc()
  for status in _statuses(result):
    Metrics.counter('cvrl_convert', status).inc()
  return shard_index, (position, result)


def _write(keyed, output_dir, specs, encode):
  shard_index, results = keyed
  ordered = [r for _, r in sorted(results, key=lambda pr: pr[0])]
  shards.write_shard(output_dir, specs[shard_index], ordered, encode)
  return shard_index


def run(specs: Sequence[shards.ShardSpec], pending: Sequence[int],
        output_dir: str, options, pipeline_args: List[str],
        convert_fn: Callable = video_frames.convert_video,
        encode: Callable = shards.encode_video) -> Dict[str, int]:
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
       | 'Convert' >> beam.Map(_convert, options, convert_fn)
       | 'ByShard' >> beam.GroupByKey()
       | 'WriteShard' >> beam.Map(_write, output_dir, list(specs), encode))
  result = pipeline.run()
  result.wait_until_finish()
  from apache_beam.metrics.metric import MetricsFilter  # pylint: disable=g-import-not-at-top
  counters = {c.key.metric.name: c.committed for c in result.metrics().query(
      MetricsFilter().with_namespace('cvrl_convert'))['counters']}
  logging.info('beam counters (cvrl_convert): %s', counters)
  return counters

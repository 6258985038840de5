"""Runs the conversion as an Apache Beam pipeline.

The same per-video function as the local runner (`video_frames.convert_video`)
runs on Beam workers; results are grouped by shard and each shard is written by
`shards.write_shard` in task order. So a Beam run writes exactly the files a
local run writes, byte for byte, on DirectRunner here or Dataflow / Flink /
Spark with the user's pipeline options.
"""

from typing import Callable, List, Sequence

from tfrecords_tools.conversion import shards
from tfrecords_tools.conversion import video_frames


def _convert(item, options, convert_fn):
  shard_index, position, task = item
  return shard_index, (position, convert_fn(task, options))


def _write(keyed, output_dir, specs, encode):
  shard_index, results = keyed
  ordered = [r for _, r in sorted(results, key=lambda pr: pr[0])]
  shards.write_shard(output_dir, specs[shard_index], ordered, encode)
  return shard_index


def run(specs: Sequence[shards.ShardSpec], pending: Sequence[int],
        output_dir: str, options, pipeline_args: List[str],
        convert_fn: Callable = video_frames.convert_video,
        encode: Callable = shards.encode_video) -> None:
  """Converts the shards whose indices (into `specs`) are in `pending`.

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
    return
  opts = pipeline_options.PipelineOptions(pipeline_args)
  with beam.Pipeline(options=opts) as pipeline:
    _ = (pipeline
         | 'Videos' >> beam.Create(items)
         # Spread videos over workers; one video is the unit of work.
         | 'Spread' >> beam.Reshuffle()
         | 'Convert' >> beam.Map(_convert, options, convert_fn)
         | 'ByShard' >> beam.GroupByKey()
         | 'WriteShard' >> beam.Map(_write, output_dir, list(specs),
                                  encode))

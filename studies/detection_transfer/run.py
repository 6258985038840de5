r"""Does CVRL pretraining help the detection demo? One table, CPU.

  python studies/detection_transfer/run.py --demo_dir=demo_output
      [--rows=cvrl,random,movies,...] [--seeds=0,1] [--list]

Reads what `bash scripts/demo_detection.sh DIR` leaves in DIR: the synthetic
AVA's records and annotations (DIR/ava) and the main demo's checkpoint
(DIR/pretrain: `cvrl_pretrain_small` on the demo's motion videos). For every
row and seed it fine-tunes `cvrl_ava_demo` (residual frames, as the
checkpoint reads them) with the row's initialisation and overrides
(`cvrl.tools.train --mode=train_and_eval`, seed = task.init_seed and
task.train_data.seed), then prints frame mAP@0.5 per row and seed, the mean
and the spread over seeds, and each pretrained row's margin over the random
row with the same overrides.

Initialisations: 'cvrl' the main demo's checkpoint; 'movies' the same
recipe pretrained on the synthetic movies themselves (what a user with only
the movies would do: each training movie cut into 4 s segments every 2 s,
converted with `convert_videos` from a Kinetics-style CSV, then
`cvrl_pretrain_small` as registered); 'random' random weights.

Runs are kept in --work_dir (default DIR/detection_transfer); a run whose
settings are unchanged is not redone.
"""

import argparse
import glob
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
from cvrl.eval import reports
from studies import commands

FROZEN_BN = {'task.backbone_batch_norm': 'frozen'}
FROM_RES3 = {'task.fine_tune_from': 'res3'}
# cvrl_ava_demo: 12 epochs, steps down at 8 and 11.
TWICE_THE_SCHEDULE = {'trainer.epochs': 24, 'trainer.decay_epochs': '[16,22]',
                      'trainer.checkpoint_epochs': 24,
                      'trainer.validation_epochs': 24}


def frame_size(height, width):
  """Training crops and test frames of height x width (the movies are
  64 x 96; training short sides in [height, 1.25 height] as the demo's)."""
  size = f'[{height},{width}]'
  return {'task.train_data.frame_size': size,
          'task.train_data.short_side_range': f'[{height},{height * 5 // 4}]',
          'task.validation_data.frame_size': size}

# Each row: (what it tests, initialisation, overrides).
ROWS = {
    'cvrl': ('main demo checkpoint, everything fine-tuned', 'cvrl', {}),
    'random': ('random init, everything fine-tuned', 'random', {}),
    'movies': ('pretrained on the synthetic movies\' own clips', 'movies',
               {}),
    'cvrl_frozen_bn': ('main demo checkpoint, backbone BN frozen', 'cvrl',
                       FROZEN_BN),
    'random_frozen_bn': ('random init, backbone BN frozen', 'random',
                         FROZEN_BN),
    'movies_frozen_bn': ('movies pretraining, backbone BN frozen', 'movies',
                         FROZEN_BN),
    'cvrl_from_res3': ('main demo checkpoint, stem and res2 frozen (the '
                       'demo as it runs)', 'cvrl', FROM_RES3),
    'random_from_res3': ('random init, stem and res2 frozen (the demo\'s '
                         'baseline)', 'random', FROM_RES3),
    'cvrl_from_res3_2x': ('the demo, twice the schedule', 'cvrl',
                          dict(FROM_RES3, **TWICE_THE_SCHEDULE)),
    'random_from_res3_2x': ('the demo\'s baseline, twice the schedule',
                            'random', dict(FROM_RES3, **TWICE_THE_SCHEDULE)),
    'cvrl_from_res3_48x80': ('the demo at 48 x 80 frames', 'cvrl',
                             dict(FROM_RES3, **frame_size(48, 80))),
    'random_from_res3_48x80': ('the demo\'s baseline at 48 x 80 frames',
                               'random', dict(FROM_RES3, **frame_size(48, 80))),
    'cvrl_from_res4': ('main demo checkpoint, stem to res3 frozen', 'cvrl',
                       {'task.fine_tune_from': 'res4'}),
    'random_from_res4': ('random init, stem to res3 frozen', 'random',
                         {'task.fine_tune_from': 'res4'}),
}
SEGMENT_SECONDS, SEGMENT_STEP = 4, 2


_run = commands.run_module


def _movie_seconds(path):
  import av  # pylint: disable=g-import-not-at-top
  with av.open(path) as container:
    stream = container.streams.video[0]
    return float(stream.duration * stream.time_base)


def segment_rows(seconds_of):
  """A Kinetics-style CSV's lines cutting each movie {name: seconds} into
  SEGMENT_SECONDS segments every SEGMENT_STEP seconds (whole segments
  only; the converter cuts untrimmed files to [time_start, time_end])."""
  rows = ['label,youtube_id,time_start,time_end,split']
  for name, seconds in sorted(seconds_of.items()):
    last = int(seconds) - SEGMENT_SECONDS
    rows += [f'movie,{name},{s},{s + SEGMENT_SECONDS},train'
             for s in range(0, last + 1, SEGMENT_STEP)]
  return rows


def movies_checkpoint(ava_dir, work_dir):
  """`cvrl_pretrain_small` on the training movies cut into segments."""
  folder = os.path.join(work_dir, 'pretrain_movies')
  if glob.glob(os.path.join(folder, 'ckpt-*.index')):
    return folder
  movies = sorted(glob.glob(os.path.join(ava_dir, 'movies', 'syntr*.mp4')))
  if not movies:
    raise FileNotFoundError(f'{ava_dir}/movies: no training movies '
                            '(syntr*.mp4); run scripts/demo_detection.sh')
  rows = segment_rows({os.path.splitext(os.path.basename(m))[0]:
                       _movie_seconds(m) for m in movies})
  os.makedirs(work_dir, exist_ok=True)
  csv = os.path.join(work_dir, 'movie_segments.csv')
  with open(csv, 'w') as f:
    f.write('\n'.join(rows) + '\n')
  records = os.path.join(work_dir, 'movie_records')
  _run(['tfrecords_tools.convert_videos', f'--input_csv={csv}',
        f'--video_root={ava_dir}/movies', f'--output_dir={records}',
        '--short_side=0', '--num_shards=4'],
       os.path.join(work_dir, 'convert_movies.log'))
  pattern = os.path.join(records, 'train-*.tfrecord')
  _run(['cvrl.tools.train', '--experiment=cvrl_pretrain_small',
        '--mode=train', f'--model_dir={folder}',
        f'--params_override=task.train_data.input_path={pattern},'
        f'task.validation_data.input_path={pattern}'],
       os.path.join(work_dir, 'pretrain_movies.log'))
  return folder


def detection_data(ava_dir):
  root = f'{ava_dir}/tfrecords'
  notes = f'{ava_dir}/annotations'
  return {
      'task.train_data.input_path': f'{root}/train/train-*.tfrecord',
      'task.validation_data.input_path': f'{root}/val/val-*.tfrecord',
      'task.evaluated_label_map':
          f'{notes}/ava_action_list_v2.2_for_activitynet_2019.pbtxt',
      'task.label_map': f'{notes}/ava_action_list_v2.2.pbtxt',
      'task.groundtruth_csv': f'{notes}/ava_val_v2.2.csv',
      'task.excluded_timestamps':
          f'{notes}/ava_val_excluded_timestamps_v2.2.csv',
      'task.model.backbone.cvrl_r3d.input_frames': 'difference',
  }


def fine_tune(row, seed, checkpoints, ava_dir, work_dir):
  """The row's detection run at `seed`; returns its model_dir."""
  _, init, overrides = ROWS[row]
  settings = dict(detection_data(ava_dir), **overrides)
  settings['task.init_seed'] = seed
  settings['task.train_data.seed'] = seed
  if init == 'random':
    settings.update({'task.init_checkpoint': '',
                     'task.random_backbone': True})
  else:
    settings['task.init_checkpoint'] = checkpoints[init]
  model_dir = os.path.join(work_dir, f'{row}_seed{seed}')
  stamp = os.path.join(model_dir, 'study.json')
  if os.path.exists(stamp):
    with open(stamp) as f:
      if json.load(f) == settings:
        return model_dir
  subprocess.run(['rm', '-rf', model_dir], check=True)
  override = ','.join(f'{k}={v}' for k, v in settings.items())
  _run(['cvrl.tools.train', '--experiment=cvrl_ava_demo',
        '--mode=train_and_eval', f'--model_dir={model_dir}',
        f'--params_override={override}'], model_dir + '.log')
  with open(stamp, 'w') as f:
    json.dump(settings, f)
  return model_dir


def final_map(model_dir):
  scalars = reports.read_scalars(os.path.join(model_dir, 'validation'))
  return 100 * scalars['mAP'][max(scalars['mAP'])]


def baseline_of(row):
  """The random-init row with the same overrides as `row`."""
  _, _, overrides = ROWS[row]
  for name, (_, init, other) in ROWS.items():
    if init == 'random' and other == overrides:
      return name
  return None


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--demo_dir', default='demo_output')
  parser.add_argument('--rows', default='cvrl,random,movies')
  parser.add_argument('--seeds', default='0,1')
  parser.add_argument('--work_dir', default='')
  parser.add_argument('--list', action='store_true')
  args = parser.parse_args()
  if args.list:
    for name, (what, init, overrides) in ROWS.items():
      print(f'{name:18s} {init:7s} {what} {overrides or ""}')
    return
  rows = args.rows.split(',')
  unknown = [r for r in rows if r not in ROWS]
  if unknown:
    raise SystemExit(f'--rows: unknown {unknown}; --list shows the rows')
  seeds = [int(s) for s in args.seeds.split(',')]
  ava_dir = os.path.join(args.demo_dir, 'ava')
  work_dir = args.work_dir or os.path.join(args.demo_dir,
                                           'detection_transfer')
  os.makedirs(work_dir, exist_ok=True)  # the runs' logs go beside them
  checkpoints = {'cvrl': os.path.join(args.demo_dir, 'pretrain')}
  if any(ROWS[r][1] == 'movies' for r in rows):
    checkpoints['movies'] = movies_checkpoint(ava_dir, work_dir)
  results = {}
  for row in rows:
    for seed in seeds:
      results[row, seed] = final_map(fine_tune(row, seed, checkpoints,
                                               ava_dir, work_dir))
      print(f'{row} seed {seed}: mAP {results[row, seed]:.2f}', flush=True)
  print(f'\n| row | what | {" | ".join(f"seed {s}" for s in seeds)} | '
        'mean | spread | vs random init |')
  print('|---|---|' + '---:|' * (len(seeds) + 3))
  for row in rows:
    values = [results[row, s] for s in seeds]
    base = baseline_of(row)
    margin = ''
    if base and base != row and base in rows:
      margin = ', '.join(f'{results[row, s] - results[base, s]:+.2f}'
                         for s in seeds)
    print(f'| {row} | {ROWS[row][0]} | '
          + ' | '.join(f'{v:.2f}' for v in values)
          + f' | {sum(values) / len(values):.2f} | '
          f'{max(values) - min(values):.2f} | {margin} |')


if __name__ == '__main__':
  main()

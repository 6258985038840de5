"""What every config module uses: range checks and the table of datasets.

`check` raises `ConfigError` naming the offending field, the value and what
was expected. The dataset table holds each dataset's classes, split sizes
and paths, read by every experiment factory, so a size is written once. The
sizes are defaults: every real copy of Kinetics misses some videos, so set
`task.train_data.num_examples` to what your conversion wrote
(`inspect_tfrecords` prints it) and the schedule is re-derived from it when
the job starts (`cvrl.configs.schedule`).

Kinetics train sizes are those implied by the paper's step counts at batch
1024 (Figure 4: 46k steps = 200 K400 epochs, 284k steps = 800 K600 epochs),
i.e. the copies the authors had; paper section 4: "about 240k training and
20k validation videos" (K400), "about 360k training and 28k validation"
(K600); the validation sizes here are those round figures. UCF-101 and
HMDB-51: the official splits' sizes.
"""

import dataclasses
from typing import Dict, Optional


class ConfigError(ValueError):
  """A config value out of its range; the message names the field."""


def check(condition: bool, field: str, value, expected: str) -> None:
  """Raises ConfigError naming `field` unless `condition` holds."""
  if not condition:
    raise ConfigError(f'{field}={value!r}: expected {expected}')


# Where the factories point until a YAML or --params_override says otherwise.
BUCKET_ROOT = 'gs://YOUR_BUCKET'


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Facts of one dataset; `splits` maps split number -> (train, test) size."""
  name: str
  num_classes: int
  train_examples: int
  val_examples: int
  # Folder (under BUCKET_ROOT) holding {train,val}-*.tfrecord, or the
  # split{n}/ folders of a dataset with official splits.
  folder: str
  splits: Optional[Dict[int, tuple]] = None

  def root(self, split: Optional[int] = None) -> str:
    base = f'{BUCKET_ROOT}/{self.folder}'
    return f'{base}/split{split}' if split else base

  def train_pattern(self, split: Optional[int] = None,
                    subset: str = '') -> str:
    """train-*.tfrecord of the dataset (or a split, or a labelled subset)."""
    root = self.root(split) + (f'_{subset}' if subset else '')
    return f'{root}/train-*.tfrecord'

  def eval_pattern(self, split: Optional[int] = None) -> str:
    """Validation records (Kinetics) or a split's test records."""
    name = 'test' if split else 'val'
    return f'{self.root(split)}/{name}-*.tfrecord'

  def split_sizes(self, split: int) -> tuple:
    if not self.splits or split not in self.splits:
      raise KeyError(f'dataset {self.name}: no split {split} '
                     f'(has {sorted(self.splits or {})})')
    return self.splits[split]


DATASETS: Dict[str, Dataset] = {
    d.name: d for d in (
        Dataset('k400', num_classes=400, train_examples=235_520,
                val_examples=20_000, folder='kinetics400/tfrecords'),
        Dataset('k600', num_classes=600, train_examples=363_520,
                val_examples=28_000, folder='kinetics600/tfrecords'),
        Dataset('ucf101', num_classes=101, train_examples=9_537,
                val_examples=3_783, folder='ucf101',
                splits={1: (9_537, 3_783), 2: (9_586, 3_734),
                        3: (9_624, 3_696)}),
        Dataset('hmdb51', num_classes=51, train_examples=3_570,
                val_examples=1_530, folder='hmdb51',
                splits={1: (3_570, 1_530), 2: (3_570, 1_530),
                        3: (3_570, 1_530)}),
    )
}


def dataset(name: str) -> Dataset:
  if name not in DATASETS:
    raise KeyError(f'dataset {name!r}: expected one of {sorted(DATASETS)}')
  return DATASETS[name]

r"""`train.py --experiment=...`: the training command, as `cvrl-train` and
`python -m cvrl.tools.train` (see cvrl/tools/train.py).

  python cvrl/train.py --experiment=cvrl_pretrain_k600 --mode=train_and_eval \
      --model_dir=gs://BUCKET/cvrl/k600 --tpu=TPU_NAME
"""

import os
import sys

if __name__ == '__main__':
  # Run as a file, Python puts cvrl/ first on sys.path, where cvrl's own
  # subpackages (data, eval, tools) would shadow any top-level namesakes.
  here = os.path.dirname(os.path.abspath(__file__))
  sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != here]
  sys.path.insert(0, os.path.dirname(here))
  # pylint: disable=g-import-not-at-top
  from cvrl.data import host_malloc
  host_malloc.maybe_reexec()  # before TensorFlow loads (see tools/train.py)
  from cvrl.tools import train
  train.run()

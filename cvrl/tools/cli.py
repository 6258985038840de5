"""What every command shares: one flag vocabulary and a `--help` that shows
the command's own flags, whether it runs as `python -m ...` or as a console
script (`cvrl-train`, ...).

The same thing has the same flag name in every command:

  --input_path   TFRecords: comma-separated globs, local or gs:// (the
                 config key of training, task.*.input_path, has that name)
  --output_dir   a folder the command writes (records, a SavedModel, a
                 checkpoint); --output_file when it writes one file
  --video_root   the folder videos are found under
  --label_map    class names: label_map.txt (one a line) or a .pbtxt,
                 either accepted everywhere
  --checkpoint   a checkpoint file or a folder holding one
  --model_dir    a training job's folder (Model Garden's name)

Names used before are kept as deprecated aliases for one release: they work
and print which name replaces them.
"""

import sys
from typing import Callable, List, Tuple

from absl import app
from absl import flags
from absl import logging

_DEPRECATED: List[Tuple[str, str]] = []
# The release after which the deprecated names go.
ALIASES_REMOVED_AFTER = '0.2'


def deprecated_alias(old: str, new: str) -> None:
  """--old works as --new, with a warning naming --new."""
  flags.DEFINE_alias(old, new)
  _DEPRECATED.append((old, new))


def deprecation_warnings() -> List[str]:
  """One line per deprecated name given on this command line."""
  return [f'--{old} is deprecated (removed after {ALIASES_REMOVED_AFTER}): '
          f'use --{new}' for old, new in _DEPRECATED
          if flags.FLAGS[old].present]


def _show_flags_as_main(module_name: str) -> None:
  """absl's --help lists the key flags of the module named by sys.argv[0];
  started as a console script, that is the script, which defines none."""
  main_name = sys.argv[0]
  if module_name in ('__main__', main_name):
    return
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(main_name, flag)


def run(main: Callable, usage: str = '', **run_kwargs) -> None:
  """app.run(main) with --help listing main's module's flags and `usage`
  (default: that module's docstring), and deprecated names warned about;
  run_kwargs go to app.run (e.g. flags_parser)."""
  module = sys.modules[main.__module__]
  _show_flags_as_main(module.__name__)
  sys.modules['__main__'].__doc__ = usage or module.__doc__

  def main_with_warnings(argv):
    for line in deprecation_warnings():
      logging.warning('%s', line)
      print(f'warning: {line}', file=sys.stderr)
    return main(argv)

  app.run(main_with_warnings, **run_kwargs)

"""The commands users type: one flag vocabulary, deprecated names that still
work, --help that lists each command's flags, the console scripts, and the
small-data experiments' label-map-sized heads."""

import ast
import glob
import os
import re
import subprocess
import sys

import pytest

from cvrl import registry_imports  # noqa: F401  pylint: disable=unused-import
from cvrl.configs import base
from cvrl.data import ava_files
from cvrl.data import dataset_size
from cvrl.configs import launch
from tests.conftest import REPO_ROOT
from tests.conftest import run_module
from tfrecords_tools.conversion import sources

COMMANDS = sorted(glob.glob(os.path.join(REPO_ROOT, 'cvrl', 'tools', '*.py')) +
                  glob.glob(os.path.join(REPO_ROOT, 'tfrecords_tools', '*.py')))
# Old name -> the vocabulary's (cvrl/tools/cli.py): kept only as aliases.
RENAMED = {'pattern': 'input_path', 'movie_root': 'video_root',
           'output': ('output_dir', 'output_file')}


def _defined_flags(path):
  """(flag names DEFINE_*d, alias names) of a command's source."""
  defined, aliases = set(), set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Call) and node.args and isinstance(
        node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
      name = getattr(node.func, 'attr', getattr(node.func, 'id', ''))
      if name.startswith('DEFINE_') and name != 'DEFINE_alias':
        defined.add(node.args[0].value)
      elif name == 'deprecated_alias':
        aliases.add(node.args[0].value)
  return defined, aliases


def test_no_command_defines_an_old_name_except_as_an_alias():
  seen_aliases = set()
  for path in COMMANDS:
    defined, aliases = _defined_flags(path)
    assert not defined & set(RENAMED), (path, defined & set(RENAMED))
    seen_aliases |= aliases
    for old in aliases:
      new = RENAMED[old]
      assert defined & ({new} if isinstance(new, str) else set(new)), path
  assert seen_aliases == set(RENAMED)  # the walk sees them: it can fail


def test_every_console_script_points_at_a_command_function():
  setup = open(os.path.join(REPO_ROOT, 'setup.py')).read()
  scripts = re.findall(r"'(cvrl-[\w-]+)=([\w.]+):(\w+)'", setup)
  assert {'cvrl-train', 'cvrl-convert-videos', 'cvrl-convert-ava',
          'cvrl-export-features', 'cvrl-export-model'} <= {s for s, _, _ in
                                                           scripts}
  for script, module, function in scripts:
    path = os.path.join(REPO_ROOT, *module.split('.')) + '.py'
    tree = ast.parse(open(path).read())
    assert function in {n.name for n in tree.body
                        if isinstance(n, ast.FunctionDef)}, script
    assert 'cli.run(' in open(path).read(), f'{script}: not run through cli'


def _help(*command):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=REPO_ROOT)
  done = subprocess.run([*command, '--help'], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300,
                        check=False)
  # absl ends --help with exit status 1.
  assert done.returncode in (0, 1) and 'Try --helpfull' in done.stdout, (
      done.stderr[-2000:])
  return done.stdout


def test_train_help_lists_its_flags_and_the_experiments_in_every_form():
  script = os.path.join(os.path.dirname(sys.executable), 'cvrl-train')
  forms = [[sys.executable, '-m', 'cvrl.tools.train'],
           [sys.executable, 'cvrl/train.py']]
  if os.path.exists(script):  # installed by pip install -e (scripts/ensure_venv.sh)
    forms.append([script])
  for form in forms:
    text = _help(*form)
    for flag in ('--experiment', '--mode', '--model_dir', '--params_override',
                 '--config_file', '--list_experiments'):
      assert re.search(rf'  --(\[no\])?{flag[2:]}:', text), (form, flag)
    for experiment in ('cvrl_pretrain_k600', 'cvrl_pretrain_small',
                       'cvrl_linear_eval_small', 'cvrl_ava_detection'):
      assert f'\n{experiment} ' in text, (form, experiment)


def test_a_deprecated_name_works_and_says_its_replacement(synthetic_records):
  pattern = os.path.join(synthetic_records, 'train', 'train-*.tfrecord')
  new = run_module('tfrecords_tools.inspect_tfrecords',
                   f'--input_path={pattern}')
  old = run_module('tfrecords_tools.inspect_tfrecords', f'--pattern={pattern}')
  assert old.stdout == new.stdout and '24 videos' in new.stdout
  assert 'warning: --pattern is deprecated' in old.stderr
  assert 'use --input_path' in old.stderr
  assert 'deprecated' not in new.stderr


def test_label_maps_of_either_format_read_alike(tmp_path):
  text = tmp_path / 'label_map.txt'
  text.write_text('run\nwalk\n\njump\n')
  pbtxt = tmp_path / 'labels.pbtxt'
  pbtxt.write_text('item {\n  name: "jump"\n  id: 3\n}\nitem {\n  name: "run"'
                   '\n  id: 1\n}\nitem {\n  name: "walk"\n  id: 2\n}\n')
  assert ava_files.read_label_map(str(text)) == {1: 'run', 2: 'walk',
                                                 3: 'jump'}
  assert ava_files.read_label_map(str(pbtxt)) == {1: 'run', 2: 'walk',
                                                  3: 'jump'}
  assert sources.read_label_map(str(pbtxt)) == ['run', 'walk', 'jump']
  assert sources.read_label_map(str(text)) == ['run', 'walk', 'jump']
  text.write_text('run\nrun\n')
  with pytest.raises(sources.SourceError, match='duplicate'):
    sources.read_label_map(str(text))


def test_num_classes_zero_reads_the_label_map_beside_the_records(
    synthetic_records, tmp_path):
  train = os.path.join(synthetic_records, 'train', 'train-*.tfrecord')
  params = launch.parse_experiment(
      'cvrl_linear_eval_small',
      params_override=f'task.train_data.input_path={train}')
  assert params.task.model.head.num_classes == 0
  lines = dataset_size.resolve_num_classes(params)
  names = sources.read_label_map(os.path.join(synthetic_records, 'train',
                                              'label_map.txt'))
  assert params.task.model.head.num_classes == len(names) == 8
  assert params.task.train_data.num_classes == 8
  assert params.task.validation_data.num_classes == 8
  assert 'num_classes=8' in lines[0]
  # A set number is left alone; no label map -> the field is named.
  assert dataset_size.resolve_num_classes(params) == []
  (tmp_path / 'x-0.tfrecord').write_bytes(b'')
  params = launch.parse_experiment(
      'cvrl_linear_eval_small',
      params_override=f'task.train_data.input_path={tmp_path}/x-*.tfrecord')
  with pytest.raises(base.ConfigError,
                     match='task.model.head.num_classes=0 .*label_map.txt'):
    dataset_size.resolve_num_classes(params)
  # A job that only runs the backbone (feature export) does not need it.
  assert dataset_size.resolve_num_classes(params, required=False) == []
  assert params.task.model.head.num_classes == 0

"""The docs are checked, not just written: every command line in a fenced
block of README.md and docs/*.md, and every launch comment of
experiments/*.yaml, names a command that exists, only flags that command
defines, registered experiments and config files that exist and apply to
the experiment strictly; every relative link and repository path resolves;
every smoke-test line (runlocal) names the test that runs it; no page names
rounds of work. Flags are read from the commands' sources (absl DEFINE_*
calls, Model Garden's common flags, argparse arguments): nothing is run.

Placeholders are allowed where users put their own values (gs://BUCKET,
TPU_NAME, /data/..., '...'); flag names and experiment names must be real.
"""

import functools
import glob
import importlib.util
import os
import re
import shlex

import pytest

from tests.conftest import REPO_ROOT

PAGES = [os.path.join(REPO_ROOT, 'README.md')] + sorted(
    glob.glob(os.path.join(REPO_ROOT, 'docs', '*.md')))
RECIPES = sorted(glob.glob(os.path.join(REPO_ROOT, 'experiments', '**',
                                        '*.yaml'), recursive=True))
# Top-level folders of this repository: a `path` starting with one is a
# reference that must resolve.
OURS = ('cvrl', 'tfrecords_tools', 'experiments', 'docs', 'scripts',
        'benchmarks', 'studies', 'tests')
ABSL_BUILTINS = {'help', 'helpfull', 'helpshort', 'helpxml', 'flagfile',
                 'undefok', 'verbosity', 'v', 'logtostderr',
                 'alsologtostderr', 'log_dir', 'stderrthreshold',
                 'showprefixforinfo', 'only_check_args', 'pdb_post_mortem',
                 'run_with_pdb', 'run_with_profiling', 'use_cprofile_for_profiling'}
# A smoke-test line (a recipe with runlocal) -> the test that runs it.
SMOKE_TESTS = {
    'cvrl_pretrain_k400_200ep': 'tests/test_runlocal.py::'
                                'test_r3d50_recipes_with_runlocal_end_to_end',
    'cvrl_linear_eval_released': 'tests/test_runlocal.py::'
                                 'test_r3d50_recipes_with_runlocal_end_to_end',
    'cvrl_ava_detection': 'tests/test_detection.py::'
                          'test_runlocal_smoke_test_of_the_paper_recipes',
    'cvrl_ava_detection_random': 'tests/test_detection.py::'
                                 'test_runlocal_smoke_test_of_the_paper_recipes',
    'cvrl_ava_detection_inflated': 'tests/test_detection.py::'
                                   'test_runlocal_smoke_test_of_the_paper_'
                                   'recipes',
}
# Every other experiment with runlocal: one train and validation step each.
EVERY_EXPERIMENT = ('tests/test_runlocal.py::'
                    'test_every_experiment_runs_a_train_and_a_validation_step')
# Words that date a figure by a round of work instead of its date, machine,
# commit and command.
ROUNDS_OF_WORK = re.compile(
    r'\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|'
    r'last|this|next|previous|earlier|later)\s+session\b|\bsessions?\b',
    re.IGNORECASE)


def _console_scripts():
  with open(os.path.join(REPO_ROOT, 'setup.py')) as f:
    text = f.read()
  return dict(re.findall(r"'(cvrl-[\w-]+)=([\w.]+):\w+'", text))


def _source_of_module(module):
  path = os.path.join(REPO_ROOT, *module.split('.')) + '.py'
  if os.path.exists(path):
    return path
  spec = importlib.util.find_spec(module)
  return spec.origin if spec else None


_DEFINE = re.compile(r"DEFINE_(\w+)\(\s*(?:name=)?'(\w+)'")
_ALIAS = re.compile(r"deprecated_alias\(\s*'(\w+)'")
_ARGPARSE = re.compile(r"add_argument\(\s*'--([\w-]+)'(.*?)\)", re.DOTALL)


@functools.lru_cache(maxsize=None)
def flags_of(path):
  """Flag names a command's source defines (absl and argparse), with the
  negated forms of booleans."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  names = set()
  for kind, name in _DEFINE.findall(text):
    names.add(name)
    if kind in ('bool', 'boolean'):
      names.add('no' + name)
  names.update(_ALIAS.findall(text))
  for name, rest in _ARGPARSE.findall(text):
    names.add(name)
    if 'BooleanOptionalAction' in rest:
      names.add('no-' + name)
  model_garden = _source_of_module('official.common.flags')
  if 'tfm_flags.define_flags()' in text and path != model_garden:
    names |= flags_of(model_garden)
  if _DEFINE.search(text) or 'tfm_flags' in text:
    names |= ABSL_BUILTINS
  if not _ARGPARSE.search(text) and not names:
    return None  # defines no flags of its own: not checked
  names.add('help')
  return names


def _fenced_lines(path):
  """(line number, command) of every command line of a page's fenced
  blocks, continuation lines joined."""
  with open(path, encoding='utf-8') as f:
    lines = f.read().split('\n')
  out, inside, pending, start = [], False, '', 0
  for number, line in enumerate(lines, 1):
    if line.strip().startswith('```'):
      inside = not inside
      continue
    if not inside:
      continue
    text = line.strip()
    if not pending and (not text or text.startswith('#')):
      continue
    if not pending:
      start = number
    pending += ' ' + text.rstrip('\\').strip()
    if not text.endswith('\\'):
      out.append((start, pending.strip()))
      pending = ''
  return out


def _recipe_lines(path):
  """Launch commands in a recipe's leading comment lines."""
  out, pending, start = [], '', 0
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      if not line.startswith('#'):
        break
      text = line[1:].strip()
      if not pending and not re.match(r'(python|cvrl-)', text):
        continue
      if not pending:
        start = number
      pending += ' ' + text.rstrip('\\').strip()
      if not text.endswith('\\'):
        out.append((start, pending.strip()))
        pending = ''
  return out


def all_command_lines():
  found = []
  for page in PAGES:
    found += [(page, n, c) for n, c in _fenced_lines(page)]
  for recipe in RECIPES:
    found += [(recipe, n, c) for n, c in _recipe_lines(recipe)]
  return found


def _commands_of(line):
  """Each command of a shell line (split at ;, &&, ||, |)."""
  try:
    words = shlex.split(line, comments=True)
  except ValueError:
    words = line.split()
  command = []
  for word in words:
    if word in (';', '&&', '||', '|'):
      if command:
        yield command
      command = []
    else:
      command.append(word)
  if command:
    yield command


def resolve(command):
  """(what, source file or None, args) of one command, or None for a
  command this test does not check (shell builtins, other tools)."""
  scripts = _console_scripts()
  while command and re.match(r'^\w+=', command[0]):  # VAR=value cmd
    command = command[1:]
  if not command:
    return None
  head = command[0]
  if head in scripts:
    return head, _source_of_module(scripts[head]), command[1:]
  if head in ('python', 'python3') or head.endswith('/python'):
    if len(command) > 2 and command[1] == '-m':
      return command[2], _source_of_module(command[2]), command[3:]
    if len(command) > 1 and command[1].endswith('.py'):
      path = os.path.join(REPO_ROOT, command[1])
      return command[1], path, command[2:]
    return None
  if head == 'bash' and len(command) > 1 and command[1].startswith('scripts/'):
    return command[1], os.path.join(REPO_ROOT, command[1]), []
  return None


def _flag_names(args):
  for arg in args:
    match = re.match(r'^--([A-Za-z][\w-]*)', arg)
    if match:
      yield match.group(1), arg


def _values(args, name):
  out = []
  for i, arg in enumerate(args):
    if arg.startswith(f'--{name}='):
      out.append(arg.split('=', 1)[1])
    elif arg == f'--{name}' and i + 1 < len(args):
      out.append(args[i + 1])
  return out


def _where(path, number):
  return f'{os.path.relpath(path, REPO_ROOT)}:{number}'


def test_the_pages_hold_commands():
  lines = all_command_lines()
  assert len(lines) > 80, len(lines)
  assert any('README.md' in p for p, _, _ in lines)


def test_every_command_exists_and_every_flag_is_defined():
  problems, checked = [], 0
  for path, number, line in all_command_lines():
    for command in _commands_of(line):
      resolved = resolve(command)
      if resolved is None:
        continue
      what, source, args = resolved
      where = _where(path, number)
      if not source or not os.path.exists(source):
        problems.append(f'{where}: {what}: no such command, module or file')
        continue
      if not source.endswith('.py'):
        continue
      known = flags_of(source)
      if what.endswith('cvrl/train.py') or what == 'cvrl/train.py':
        known = flags_of(_source_of_module('cvrl.tools.train'))
      if known is None:
        continue
      checked += 1
      # The converters pass what they do not define to Apache Beam.
      beam = '--runner=beam' in args
      for name, arg in _flag_names(args):
        if name not in known and not beam:
          problems.append(f'{where}: {what} has no flag --{name} ({arg})')
  assert not problems, '\n'.join(problems)
  assert checked > 60, checked


@pytest.fixture(scope='module')
def registry():
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  return exp_factory._REGISTERED_CONFIGS  # pylint: disable=protected-access


def _placeholder(value):
  return (not value or value.isupper() or '...' in value or
          value.startswith(('$', '<')))


def test_experiments_are_registered_and_their_config_files_apply(registry):
  """--experiment=NAME is registered; its --config_file list exists and
  applies strictly, in order (a key the experiment lacks fails)."""
  from cvrl.configs import launch  # pylint: disable=g-import-not-at-top
  problems, applied = [], 0
  for path, number, line in all_command_lines():
    for command in _commands_of(line):
      resolved = resolve(command)
      if resolved is None:
        continue
      _, _, args = resolved
      where = _where(path, number)
      for name in _values(args, 'experiment'):
        if _placeholder(name):
          continue
        if name not in registry:
          problems.append(f'{where}: --experiment={name} is not registered')
          continue
        files = _values(args, 'config_file')
        missing = [f for f in files if not _placeholder(f) and
                   not os.path.exists(os.path.join(REPO_ROOT, f))]
        if missing:
          problems.append(f'{where}: --config_file {missing} does not exist')
          continue
        try:
          launch.parse_experiment(name, [os.path.join(REPO_ROOT, f)
                                         for f in files])
          applied += 1
        except Exception as e:  # pylint: disable=broad-except
          problems.append(f'{where}: {files} on {name}: {e}')
  assert not problems, '\n'.join(problems)
  assert applied > 40, applied


def test_every_smoke_test_line_names_the_test_that_runs_it(registry):
  problems = []
  for path, number, line in all_command_lines():
    if 'runlocal' not in line:
      continue
    for command in _commands_of(line):
      resolved = resolve(command)
      if resolved is None:
        continue
      for name in _values(resolved[2], 'experiment'):
        if _placeholder(name):
          continue
        covered = SMOKE_TESTS.get(name)
        if covered is None and name in registry and not name.startswith(
            'cvrl_ava'):
          covered = EVERY_EXPERIMENT
        if covered is None:
          problems.append(f'{_where(path, number)}: smoke test of {name}: '
                          'no test named for it (SMOKE_TESTS)')
          continue
        test_file, test_name = covered.split('::')
        with open(os.path.join(REPO_ROOT, test_file)) as f:
          if f'def {test_name}(' not in f.read():
            problems.append(f'{_where(path, number)}: {covered} is gone')
  assert not problems, '\n'.join(problems)


_LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')
_CODE = re.compile(r'`([^`]+)`')


def _repo_paths(text):
  """Repository paths named in backticks or code lines."""
  for token in re.findall(r'[\w./{}*-]+', text):
    head = token.split('/')[0]
    if head in OURS and '/' in token:
      yield token.rstrip('.,:;')


def test_links_and_repository_paths_resolve():
  problems = []
  for page in PAGES + RECIPES:
    with open(page, encoding='utf-8') as f:
      text = f.read()
    folder = os.path.dirname(page)
    prose = re.sub(r'```.*?```', '', text, flags=re.DOTALL)
    prose = _CODE.sub('', prose)
    for target in _LINK.findall(prose):
      if re.match(r'^[a-z]+://', target) or target.startswith('#'):
        continue
      target = target.split('#')[0]
      if not os.path.exists(os.path.normpath(os.path.join(folder, target))):
        problems.append(f'{os.path.relpath(page, REPO_ROOT)}: link {target}')
    spans = _CODE.findall(text)
    if page.endswith('.md'):
      spans += [c for _, c in _fenced_lines(page)]
    for span in spans:
      for token in _repo_paths(span):
        if any(c in token for c in '{}*') or token.endswith('/...'):
          continue
        if not os.path.exists(os.path.join(REPO_ROOT, token)):
          problems.append(f'{os.path.relpath(page, REPO_ROOT)}: path '
                          f'{token}')
  assert not problems, '\n'.join(sorted(set(problems)))


def test_no_page_names_rounds_of_work():
  problems = []
  for page in PAGES:
    with open(page, encoding='utf-8') as f:
      for number, line in enumerate(f, 1):
        if ROUNDS_OF_WORK.search(line):
          problems.append(f'{_where(page, number)}: {line.strip()[:100]}')
  assert not problems, '\n'.join(problems)


def test_the_checker_catches_what_it_is_for(tmp_path):
  """A misspelt flag, an unknown experiment and a missing path are found
  (so the tests above can fail)."""
  line = ('python -m cvrl.tools.train --experiment=cvrl_pretrain_k600 '
          '--mode=train --model_dirr=/tmp/x')
  what, source, args = resolve(next(_commands_of(line)))
  known = flags_of(source)
  assert 'model_dir' in known and 'tpu' in known and 'notune_malloc' in known
  assert [n for n, _ in _flag_names(args) if n not in known] == ['model_dirr']
  assert what == 'cvrl.tools.train'
  assert list(_repo_paths('see cvrl/data/no_such.py')) == [
      'cvrl/data/no_such.py']
  page = tmp_path / 'page.md'
  page.write_text('```bash\ncvrl-train --experiment=x \\\n    --mode=train\n'
                  '```\n')
  assert _fenced_lines(str(page)) == [(2, 'cvrl-train --experiment=x '
                                          '--mode=train')]
  assert ROUNDS_OF_WORK.search('measured in the sixth session')
  assert not ROUNDS_OF_WORK.search('3 rounds alternating')

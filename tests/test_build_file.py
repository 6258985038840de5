"""The BUILD file stays true: every .py file is in a target, every label exists.

The file is evaluated as Starlark-compatible Python with recording stand-ins
for the Bazel rules, so the test needs no Bazel and fails on a syntax error.
"""

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

PACKAGES = ('cvrl', 'tfrecords_tools', 'tests', 'benchmarks', 'experiments')
RULES = ('py_library', 'py_binary', 'py_test')


def _load_build():
  targets = {}

  def rule(kind):
    def record(name, srcs=(), deps=(), main=None, **unused):
      assert name not in targets, f'target {name} defined twice'
      targets[name] = dict(kind=kind, srcs=list(srcs), deps=list(deps),
                           main=main)
    return record

  env = {kind: rule(kind) for kind in RULES}
  env.update(load=lambda *args: None, package=lambda **kw: None,
             requirement=lambda name: f'@pypi//{name}',
             glob=lambda patterns: [])
  with open(os.path.join(REPO_ROOT, 'BUILD')) as f:
    exec(compile(f.read(), 'BUILD', 'exec'), env)  # pylint: disable=exec-used
  return targets


def _python_files():
  found = []
  for package in PACKAGES:
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO_ROOT,
                                                             package)):
      dirnames[:] = [d for d in dirnames if d != '__pycache__']
      found += [os.path.relpath(os.path.join(dirpath, n), REPO_ROOT)
                for n in filenames if n.endswith('.py')]
  return sorted(found)


def test_every_python_file_is_in_a_target():
  targets = _load_build()
  named = {src for t in targets.values() for src in t['srcs']}
  missing = [path for path in _python_files() if path not in named]
  assert not missing, f'add these files to BUILD: {missing}'
  stale = sorted(s for s in named
                 if not os.path.isfile(os.path.join(REPO_ROOT, s)))
  assert not stale, f'BUILD names files that do not exist: {stale}'


def test_local_labels_exist_and_tests_are_py_test():
  targets = _load_build()
  for name, target in targets.items():
    for dep in target['deps']:
      if dep.startswith(':'):
        assert dep[1:] in targets, f'{name} depends on unknown {dep}'
    for src in target['srcs']:
      if os.path.basename(src).startswith('test_'):
        assert target['kind'] == 'py_test', f'{src} must be a py_test'
    if target['kind'] == 'py_binary':
      assert target['main'] in target['srcs'], name


def test_build_is_generated_from_the_imports():
  """BUILD equals scripts/generate_build.py's output: every import of a
  project module or a third-party package is a declared dependency."""
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, 'scripts', 'generate_build.py'),
       '--check'], capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr

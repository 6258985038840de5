"""One conversion per output folder, across restarts, containers and object
stores.

A conversion holds `<output_dir>/.conversion.lock` (local folders) or a
claim `<output_dir>/.conversion.lock.d/<token>` (gs:// and other remote
file systems). The record names its holder: host, pid, start time, and,
where Linux says them, the boot id and the process's own start time. A
second job into the folder stops with a message naming the holder.

A holder is gone, and its lock stale, when it is on this host and:
  - the machine has rebooted since (another boot id);
  - its pid is not running, or is running another process (its start time
    differs: a pid reused);
  - its pid is ours but this process does not hold the lock. A restarted
    container has the same pid (often 1) and hostname at every restart, so
    after an OOM kill or a preemption the rerun takes the lock over.
A holder on another host cannot be checked: the message says how to
remove its lock.

Local folders use O_EXCL: two jobs starting together cannot both win. An
object store has no such create in `tf.io.gfile`, so each job writes a claim
of its own and then lists the claims. A job proceeds only if its claim is
the only live one it sees, and otherwise withdraws it. With the
read-after-write and list consistency of GCS (and of TF's ram://), two jobs
racing see each other at least once, so at most one proceeds. Both may
withdraw, and then the message says the two started at the same moment.
The losing job deletes only its own claim, before touching anything else
in the folder.
"""

import json
import os
import socket
import threading
import time
import uuid
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from tfrecords_tools.conversion import rerun

LOCK_FILE = '.conversion.lock'
CLAIMS_DIR = LOCK_FILE + '.d'

# Lock paths held by this process (a second job of this process into the
# same folder is refused; a lock naming our pid but not here is stale).
_HELD_HERE = set()
# Acquisitions in this process one at a time, so that a lock this process
# is taking is never seen half-taken (naming our pid, not yet held here).
_ACQUIRING = threading.Lock()


def _read_text(path: str) -> Optional[str]:
  try:
    with tf.io.gfile.GFile(path) as f:
      return f.read()
  except tf.errors.NotFoundError:
    return None


def _boot_id() -> Optional[str]:
  try:
    with open('/proc/sys/kernel/random/boot_id') as f:
      return f.read().strip()
  except OSError:
    return None


def process_start(pid: int) -> Optional[str]:
  """The process's start time in clock ticks since boot (Linux), which
  tells a reused pid from the process that wrote a lock."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      # The command name (field 2) may hold spaces: count after its ')'.
      return f.read().rsplit(')', 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _pid_running(pid: int) -> bool:
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def this_process() -> Dict:
  """The record a lock holds for this process."""
  return {'host': socket.gethostname(), 'pid': os.getpid(),
          'started': time.time(), 'boot_id': _boot_id(),
          'process_start': process_start(os.getpid())}


def holder_gone(holder: Dict, path: str) -> bool:
  """Whether the holder of the lock at `path` is certainly not running
  (see the module doc). A holder on another host is never known gone."""
  if holder.get('host') != socket.gethostname():
    return False
  boot = _boot_id()
  if holder.get('boot_id') and boot and holder['boot_id'] != boot:
    return True
  pid = int(holder.get('pid', -1))
  if pid == os.getpid():
    return path not in _HELD_HERE
  if not _pid_running(pid):
    return True
  recorded, now = holder.get('process_start'), process_start(pid)
  return bool(recorded and now and recorded != now)


def _parse(text: Optional[str]) -> Optional[Dict]:
  if text is None:
    return None
  try:
    return json.loads(text)
  except ValueError:
    return {'host': '?', 'pid': -1, 'started': 0}


class Lock:
  """One conversion per output folder (see the module doc)."""

  def __init__(self, output_dir: str):
    self.output_dir = output_dir
    self.remote = '://' in output_dir
    self.path = os.path.join(output_dir, LOCK_FILE)
    self._claim = None  # remote: the path of our claim

  def _refuse(self, holder: Dict) -> rerun.RerunError:
    since = time.strftime('%Y-%m-%d %H:%M:%S',
                          time.localtime(holder.get('started', 0)))
    same_host = holder.get('host') == socket.gethostname()
    where = 'this host' if same_host else f'host {holder.get("host")!r}'
    where_lock = (os.path.join(self.output_dir, CLAIMS_DIR) if self.remote
                  else self.path)
    return rerun.RerunError(
        f'{self.output_dir} is being converted by another job (pid '
        f'{holder.get("pid")} on {where}, since {since}); wait for it, or '
        f'delete {where_lock} if that job is gone')

  def acquire(self) -> None:
    with _ACQUIRING:
      if self.remote:
        self._acquire_claim()
      else:
        self._acquire_file()
      _HELD_HERE.add(self.path)

  def _acquire_file(self) -> None:
    holder = _parse(_read_text(self.path))
    if holder is not None:
      if not holder_gone(holder, self.path):
        raise self._refuse(holder)
      tf.io.gfile.remove(self.path)
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError as e:
      raise rerun.RerunError(
          f'{self.output_dir} is being converted by another job that '
          'started at the same moment') from e
    with os.fdopen(fd, 'w') as f:
      f.write(json.dumps(this_process()))

  def _claims(self) -> List[Tuple[str, Dict]]:
    folder = os.path.join(self.output_dir, CLAIMS_DIR)
    if not tf.io.gfile.isdir(folder):
      return []
    found = []
    for name in sorted(tf.io.gfile.listdir(folder)):
      path = os.path.join(folder, name.rstrip('/'))
      holder = _parse(_read_text(path))
      if holder is not None:  # withdrawn between the listing and the read
        found.append((path, holder))
    return found

  def _live_claims(self) -> List[Tuple[str, Dict]]:
    live = []
    for path, holder in self._claims():
      if path != self._claim and holder_gone(holder, self.path):
        tf.io.gfile.remove(path)  # a stale claim: its job is gone
      else:
        live.append((path, holder))
    return live

  def _acquire_claim(self) -> None:
    others = self._live_claims()
    if others:
      raise self._refuse(others[0][1])
    folder = os.path.join(self.output_dir, CLAIMS_DIR)
    tf.io.gfile.makedirs(folder)
    me = this_process()
    self._claim = os.path.join(folder, uuid.uuid4().hex)
    with tf.io.gfile.GFile(self._claim, 'w') as f:
      f.write(json.dumps(me))
    others = [(p, h) for p, h in self._live_claims() if p != self._claim]
    if others:
      tf.io.gfile.remove(self._claim)
      self._claim = None
      raise rerun.RerunError(
          f'{self.output_dir} is being converted by another job that '
          f'started at the same moment (pid {others[0][1].get("pid")} on '
          f'{others[0][1].get("host")!r}); nothing was changed')

  def release(self) -> None:
    if self.path not in _HELD_HERE:
      return
    _HELD_HERE.discard(self.path)
    target = self._claim if self.remote else self.path
    if target and tf.io.gfile.exists(target):
      tf.io.gfile.remove(target)
    self._claim = None

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()

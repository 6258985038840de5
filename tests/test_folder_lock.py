"""One conversion per output folder, the way jobs really restart: a
container's rerun with the same pid, a reused pid, a reboot, and two jobs
racing on an object store (ram://, with TF's semantics as on gs://)."""

import json
import os
import socket
import subprocess

import pytest

from tfrecords_tools.conversion import folder_lock
from tfrecords_tools.conversion import rerun


def _holder(**fields):
  record = folder_lock.this_process()
  record.update(fields)
  return json.dumps(record)


def _write_lock(folder, text):
  (folder / folder_lock.LOCK_FILE).write_text(text)


def test_a_lock_naming_our_pid_but_not_held_here_is_taken_over(tmp_path):
  """A restarted container: the same pid and hostname as the job that was
  killed, which left its lock."""
  _write_lock(tmp_path, _holder(started=0))
  with folder_lock.Lock(str(tmp_path)) as lock:
    mine = json.loads((tmp_path / folder_lock.LOCK_FILE).read_text())
    assert mine['pid'] == os.getpid() and mine['started'] > 0
    # While held, a second job of this very process is refused.
    with pytest.raises(rerun.RerunError, match='being converted'):
      folder_lock.Lock(str(tmp_path)).acquire()
    assert lock.path in folder_lock._HELD_HERE  # pylint: disable=protected-access
  assert not (tmp_path / folder_lock.LOCK_FILE).exists()


@pytest.mark.timeout(60)
@pytest.mark.skipif(folder_lock.process_start(os.getpid()) is None,
                    reason='needs /proc/<pid>/stat')
def test_a_running_holder_is_respected_and_a_reused_pid_is_not(tmp_path):
  other = subprocess.Popen(['sleep', '60'])
  try:
    start = folder_lock.process_start(other.pid)
    _write_lock(tmp_path, _holder(pid=other.pid, process_start=start))
    with pytest.raises(rerun.RerunError,
                       match=rf'pid {other.pid} on this host'):
      folder_lock.Lock(str(tmp_path)).acquire()
    # The same pid, but started at another time: not the lock's writer.
    _write_lock(tmp_path, _holder(pid=other.pid,
                                  process_start=str(int(start) - 1)))
    with folder_lock.Lock(str(tmp_path)):
      pass
  finally:
    other.kill()
    other.wait()


def test_a_lock_from_before_a_reboot_or_of_a_gone_pid_is_stale(tmp_path):
  _write_lock(tmp_path, _holder(pid=1, boot_id='another-boot'))
  with folder_lock.Lock(str(tmp_path)):
    pass
  _write_lock(tmp_path, _holder(pid=2 ** 22 + 17, process_start=None))
  with folder_lock.Lock(str(tmp_path)):
    pass
  _write_lock(tmp_path, _holder(host='worker-7', pid=1))
  with pytest.raises(rerun.RerunError, match="host 'worker-7'.*delete"):
    folder_lock.Lock(str(tmp_path)).acquire()


def _ram_folder(name):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  folder = f'ram://locks/{name}'
  tf.io.gfile.makedirs(folder)
  return folder


def _claims(folder):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  claims = os.path.join(folder, folder_lock.CLAIMS_DIR)
  if not tf.io.gfile.isdir(claims):
    return []
  return sorted(tf.io.gfile.listdir(claims))


def _write(path, text):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(text)


def test_object_store_one_holder_and_stale_claims_cleared():
  folder = _ram_folder('one')
  with folder_lock.Lock(folder):
    assert len(_claims(folder)) == 1
    with pytest.raises(rerun.RerunError, match='being converted'):
      folder_lock.Lock(folder).acquire()
    assert len(_claims(folder)) == 1  # the refused job left nothing
  assert not _claims(folder)
  # A claim left by a job of this host that is gone is removed.
  _write(os.path.join(folder, folder_lock.CLAIMS_DIR, 'old'),
         _holder(pid=2 ** 22 + 17, process_start=None))
  with folder_lock.Lock(folder):
    assert len(_claims(folder)) == 1 and 'old' not in _claims(folder)


def test_object_store_racing_jobs_cannot_both_proceed(monkeypatch):
  """Another host's job claims the folder between our first look and our
  own claim: we see its claim when we list, withdraw ours and touch
  nothing else, in particular not its in-flight temporaries."""
  folder = _ram_folder('race')
  rival = os.path.join(folder, folder_lock.CLAIMS_DIR, 'rival')
  in_flight = os.path.join(folder, 'train-00000-of-00002.tfrecord.tmp-9')
  real = folder_lock.this_process
  rival_record = _holder(host='worker-7', pid=1)

  def rival_claims_first():
    _write(rival, rival_record)
    _write(in_flight, 'records being written')
    return real()
  monkeypatch.setattr(folder_lock, 'this_process', rival_claims_first)
  with pytest.raises(rerun.RerunError, match='at the same moment'):
    folder_lock.Lock(folder).acquire()
  assert _claims(folder) == ['rival']
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  assert tf.io.gfile.exists(in_flight)
  # The rival, listing after its own claim, sees no other: it proceeds;
  # a third job is refused while the rival's claim stands.
  monkeypatch.setattr(folder_lock, 'this_process', real)
  with pytest.raises(rerun.RerunError, match="host 'worker-7'"):
    folder_lock.Lock(folder).acquire()
  assert socket.gethostname() != 'worker-7'

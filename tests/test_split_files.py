"""UCF-101 / HMDB-51 split files in the datasets' real formats."""

import os
import shutil

import pytest

from tfrecords_tools.conversion import sources
from tfrecords_tools.conversion import split_files
from tests.conftest import run_module

UCF_CLASSES = ['ApplyEyeMakeup', 'HandstandPushups', 'YoYo']


def _write(path, lines, crlf=True):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', newline='') as f:
    f.write(''.join(line + ('\r\n' if crlf else '\n') for line in lines))


def _ucf(tmp_path, video_maker=None):
  """classInd + lists as distributed (CRLF; folder case differs for
  HandstandPushups vs its files, as in the real UCF-101)."""
  lists = tmp_path / 'ucfTrainTestlist'
  _write(str(lists / 'classInd.txt'),
         [f'{i + 1} {c}' for i, c in enumerate(UCF_CLASSES)])
  train = ['ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1',
           'HandstandPushups/v_HandStandPushups_g08_c01.avi 2',
           'YoYo/v_YoYo_g08_c01.avi 3']
  test = ['ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi',
          'HandStandPushups/v_HandStandPushups_g01_c01.avi',
          'YoYo/v_YoYo_g01_c01.avi']
  _write(str(lists / 'trainlist01.txt'), train)
  _write(str(lists / 'testlist01.txt'), test)
  root = tmp_path / 'UCF-101'
  for line in train + test:
    relative = line.split()[0]
    # Real archive: folder HandstandPushups, files v_HandStandPushups_*.
    folder, name = relative.split('/')
    target = root / ('HandstandPushups' if folder.lower() ==
                     'handstandpushups' else folder) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if video_maker:
      video_maker(str(target))
    else:
      target.write_bytes(b'')
  return str(lists), str(root)


def test_ucf101_split_parsing(tmp_path):
  lists, root = _ucf(tmp_path)
  tasks, labels = split_files.read_split('ucf101', lists, root, 1)
  assert labels == UCF_CLASSES  # classInd order, index = line - 1
  by_id = {t.clip_id: t for t in tasks}
  assert len(tasks) == 6
  assert {t.split for t in tasks} == {'train', 'test'}
  hand = by_id['HandStandPushups/v_HandStandPushups_g01_c01.avi']
  assert hand.label == 'HandstandPushups' and hand.split == 'test'
  assert hand.path.endswith('HandstandPushups/v_HandStandPushups_g01_c01.avi')
  assert by_id['YoYo/v_YoYo_g08_c01.avi'].label == 'YoYo'
  assert all(t.path and os.path.isfile(t.path) for t in tasks)


def test_ucf101_bad_lines_name_file_and_line(tmp_path):
  lists, root = _ucf(tmp_path)
  _write(os.path.join(lists, 'trainlist02.txt'),
         ['ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1',
          'YoYo/v_YoYo_g08_c01.avi 102'])
  _write(os.path.join(lists, 'testlist02.txt'), [])
  with pytest.raises(sources.SourceError, match=r'trainlist02.txt:2: class '
                     r"index '102' is not in 1..3"):
    split_files.read_split('ucf101', lists, root, 2)
  _write(os.path.join(lists, 'trainlist03.txt'), [])
  _write(os.path.join(lists, 'testlist03.txt'), ['Surfing/v_Surfing_g01.avi'])
  with pytest.raises(sources.SourceError, match='testlist03.txt:1'):
    split_files.read_split('ucf101', lists, root, 3)
  with pytest.raises(sources.SourceError, match='split number 4'):
    split_files.read_split('ucf101', lists, root, 4)


def test_missing_videos_are_kept_for_the_manifest(tmp_path):
  lists, root = _ucf(tmp_path)
  os.remove(os.path.join(root, 'YoYo', 'v_YoYo_g01_c01.avi'))
  tasks, _ = split_files.read_split('ucf101', lists, root, 1)
  missing = [t for t in tasks if t.path is None]
  assert [t.clip_id for t in missing] == ['YoYo/v_YoYo_g01_c01.avi']


def test_hmdb51_split_parsing(tmp_path):
  splits = tmp_path / 'testTrainMulti_7030_splits'
  # Real format: '<video>.avi <0|1|2> ' with a trailing space, CRLF.
  _write(str(splits / 'brush_hair_test_split1.txt'),
         ['April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 ',
          'April_09_brush_hair_u_nm_np1_ba_goo_1.avi 2 ',
          'April_09_brush_hair_u_nm_np1_ba_goo_2.avi 0 '])
  _write(str(splits / 'brush_hair_test_split2.txt'),
         ['April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 '])
  _write(str(splits / 'cartwheel_test_split1.txt'),
         ['Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi 1 '])
  root = tmp_path / 'hmdb51'
  (root / 'brush_hair').mkdir(parents=True)
  (root / 'brush_hair' / 'April_09_brush_hair_u_nm_np1_ba_goo_0.avi').write_bytes(b'')
  flat = root / 'Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi'
  flat.write_bytes(b'')  # any layout: found by file name
  tasks, labels = split_files.read_split('hmdb51', str(splits), str(root), 1)
  assert labels == ['brush_hair', 'cartwheel']
  got = {(t.clip_id, t.split, t.label) for t in tasks}
  assert got == {
      ('brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi', 'train',
       'brush_hair'),
      ('brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi', 'test',
       'brush_hair'),
      ('cartwheel/Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi', 'train',
       'cartwheel')}  # flag 0: not in split 1
  paths = {t.clip_id.split('/')[1]: t.path for t in tasks}
  assert paths['Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi'] == str(flat)
  assert paths['April_09_brush_hair_u_nm_np1_ba_goo_1.avi'] is None
  split2, _ = split_files.read_split('hmdb51', str(splits), str(root), 2)
  assert [(t.split, t.label) for t in split2] == [('test', 'brush_hair')]
  _write(str(splits / 'cartwheel_test_split3.txt'), ['a.avi 7'])
  with pytest.raises(sources.SourceError,
                     match=r'cartwheel_test_split3.txt:1: expected'):
    split_files.read_split('hmdb51', str(splits), str(root), 3)


def test_convert_videos_writes_both_splits_of_ucf101(tmp_path,
                                                     synthetic_videos):
  sample = sorted(
      os.path.join(dp, f) for dp, _, fs in os.walk(synthetic_videos)
      for f in fs if f.endswith('.mp4'))[0]
  lists, root = _ucf(tmp_path, lambda target: shutil.copy(sample, target))
  out = str(tmp_path / 'split1')
  result = run_module('tfrecords_tools.convert_videos', '--split_files=ucf101',
                      f'--split_dir={lists}', '--split_number=1',
                      f'--video_root={root}', f'--output_dir={out}',
                      '--short_side=0', '--num_shards=1', '--workers=1')
  assert '6 videos: ok=6,' in result.stdout, result.stdout
  names = sorted(os.listdir(out))
  assert 'train-00000-of-00001.tfrecord' in names
  assert 'test-00000-of-00001.tfrecord' in names
  with open(os.path.join(out, 'label_map.txt')) as f:
    assert f.read().split() == UCF_CLASSES
  usage = run_module('tfrecords_tools.convert_videos', '--split_files=ucf101',
                     f'--output_dir={out}2', check=False)
  assert usage.returncode == 2 and '--split_dir' in usage.stderr

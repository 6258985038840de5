"""studies/detection_transfer: its rows, their baselines, the movie cuts."""

from studies.detection_transfer import run


def test_every_pretrained_row_has_a_random_row_with_its_overrides():
  for name, (_, init, overrides) in run.ROWS.items():
    base = run.baseline_of(name)
    assert base is not None, name
    assert run.ROWS[base][1] == 'random'
    assert run.ROWS[base][2] == overrides
  assert run.baseline_of('cvrl_frozen_bn') == 'random_frozen_bn'


def test_movies_are_cut_into_whole_overlapping_segments():
  rows = run.segment_rows({'b': 14.0, 'a': 5.9, 'c': 3.0})
  assert rows[0] == 'label,youtube_id,time_start,time_end,split'
  # 14 s: starts 0, 2, ..., 10 (the last whole 4 s segment); 5.9 s: 0 only;
  # 3 s: shorter than a segment, none.
  assert rows[1:] == ['movie,a,0,4,train'] + [
      f'movie,b,{s},{s + 4},train' for s in range(0, 11, 2)]


def test_detection_data_reads_residual_frames_like_the_checkpoint():
  data = run.detection_data('/x/ava')
  assert data['task.model.backbone.cvrl_r3d.input_frames'] == 'difference'
  assert data['task.groundtruth_csv'] == '/x/ava/annotations/ava_val_v2.2.csv'


def test_every_rows_overrides_apply_to_the_demos_experiment():
  """As the study passes them (one --params_override string, strict)."""
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from official.modeling.hyperparams import params_dict  # pylint: disable=g-import-not-at-top
  from cvrl import registry_imports  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  for name, (_, _, overrides) in run.ROWS.items():
    config = exp_factory.get_exp_config('cvrl_ava_demo')
    text = ','.join(f'{k}={v}' for k, v in overrides.items())
    if text:
      config = params_dict.override_params_dict(config, text, is_strict=True)
    config.validate()
    for key, value in overrides.items():
      got = config
      for part in key.split('.'):
        got = getattr(got, part)
      expected = [int(v) for v in value.strip('[]').split(',')] if (
          isinstance(value, str) and value.startswith('[')) else value
      assert (list(got) if isinstance(got, (list, tuple)) else got) == (
          expected), (name, key)
  twice = run.ROWS['cvrl_from_res3_2x'][2]
  assert twice['trainer.epochs'] == 2 * exp_factory.get_exp_config(
      'cvrl_ava_demo').trainer.epochs

"""AVA action detection task, on the shared `video_task.VideoTask` loop.

train_step: the clip and its ground-truth boxes through the detector,
sigmoid binary cross-entropy per (box, action), averaged over the real
(unpadded) boxes and the classes, as PySlowFast's BCE; + weight decay.
validation_step: the proposals above the score threshold through the
detector; each (proposal, action) with its sigmoid score is a detection.
aggregate_logs / reduce_aggregated_logs (Model Garden's contract, run on
the host) collect them with the records' ground truth and compute the
frame-level mAP at IoU 0.5 over the evaluated classes (`ava_map`). The
trainer writes 'mAP' and one 'AP/<action>' per class to TensorBoard; the
per-class table and the detections (the official evaluator's CSV layout)
go to model_dir as ava_ap_step_{N}.csv and ava_detections_step_{N}.csv.
"""

import os
from typing import Dict

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from official.core import task_factory

from cvrl.configs import detection as detection_cfg
from cvrl.data import ava_files
from cvrl.data import detection_pipeline
from cvrl.eval import ava_map
from cvrl.modeling import action_detector
from cvrl.tasks import video_task

_EVAL_KEYS = ('key', 'boxes', 'box_mask', 'gt_boxes', 'gt_labels', 'gt_mask')


def _xyxy(box_yx) -> tuple:
  """(ymin, xmin, ymax, xmax) -> the CSVs' (x1, y1, x2, y2)."""
  return (float(box_yx[1]), float(box_yx[0]), float(box_yx[3]),
          float(box_yx[2]))


@task_factory.register_task_cls(detection_cfg.DetectionTaskConfig)
class DetectionTask(video_task.VideoTask):
  """Spatio-temporal action detection (see the module doc)."""

  def make_model(self) -> action_detector.ActionDetector:
    return action_detector.build_detector(self.task_config)

  def initialize(self, model: action_detector.ActionDetector) -> None:
    self.restore_pretrained_backbone(model.backbone)

  def build_inputs(self, params, input_context=None) -> tf.data.Dataset:
    return detection_pipeline.build_dataset(params, input_context)

  @property
  def weight_decay(self) -> float:
    return self.task_config.l2_weight_decay

  def forward(self, model, inputs, training: bool) -> Dict[str, tf.Tensor]:
    logits = model({'image': inputs['image'], 'boxes': inputs['boxes']},
                   training=training)
    return {'logits': logits, 'probs': tf.sigmoid(logits)}

  def step_losses(self, model, inputs, training: bool):
    outputs = self.forward(model, inputs, training)
    logs = self.box_losses(inputs['labels'], inputs['box_mask'], outputs,
                           aux_losses=self.regularization(model))
    return logs, outputs

  def box_losses(self, labels, box_mask, model_outputs,
                 aux_losses=None) -> Dict[str, tf.Tensor]:
    """Mean BCE over real boxes and classes (+ weight decay).

    labels [B, N, C] 0/1, box_mask [B, N] 1 for real boxes; logits
    [B, N, C]. Evaluation batches hold proposals, labelled with the
    actions of the ground-truth box they match (IoU >= 0.5), none if no
    match (`detection_pipeline.proposal_labels`).
    """
    logits = model_outputs['logits']
    per_entry = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.float32), logits=logits)
    mask = tf.cast(box_mask, tf.float32)[..., None]
    entries = tf.maximum(tf.reduce_sum(mask) * logits.shape[-1], 1.0)
    classification = tf.reduce_sum(per_entry * mask) / entries
    regularization = (tf.constant(0.0) if aux_losses is None
                      else tf.cast(aux_losses, tf.float32))
    return {video_task.TOTAL_LOSS: classification + regularization,
            'classification_loss': classification,
            'regularization_loss': regularization}

  def build_metrics(self, training: bool = True):
    return [tf_keras.metrics.Mean(n) for n in (
        'classification_loss', 'regularization_loss', 'boxes_dropped')]

  def process_metrics(self, metrics, labels, model_outputs, logs=None,
                      **kwargs):
    del labels, model_outputs, kwargs
    for metric in metrics:
      if logs is not None and metric.name in logs:
        metric.update_state(logs[metric.name])

  def _step_logs(self, logs, inputs, outputs, metrics):
    logs = dict(logs, boxes_dropped=tf.reduce_sum(
        tf.cast(inputs['boxes_dropped'], tf.float32)))
    return super()._step_logs(logs, inputs, outputs, metrics)

  def evaluation_outputs(self, inputs, outputs):
    return dict({k: inputs[k] for k in _EVAL_KEYS}, probs=outputs['probs'])

  def aggregate_logs(self, state=None, step_logs=None):
    return video_task.gather_replicas(state, step_logs,
                                      _EVAL_KEYS + ('probs',))

  def evaluated_classes(self):
    """Evaluated action ids and names for the per-class table."""
    config = self.task_config
    num = config.model.head.num_classes
    names = (ava_files.read_label_map(config.label_map) if config.label_map
             else {})
    if config.evaluated_label_map:
      ids = sorted(ava_files.read_label_map(config.evaluated_label_map))
    else:
      ids = list(range(1, num + 1))
    outside = [i for i in ids if not 1 <= i <= num]
    if outside:
      raise ValueError(f'task.evaluated_label_map={config.evaluated_label_map}'
                       f': action ids {outside} are outside [1, '
                       f'model.head.num_classes={num}]')
    return ids, {i: names.get(i, str(i)) for i in ids}

  def detections_and_truth(self, state):
    """(ground truth, detections) in the evaluator's form, from the state."""
    arrays = {k: np.concatenate(v) if v else np.zeros([0])
              for k, v in state.items()}
    groundtruth, detections = [], []
    for i, codes in enumerate(arrays['key']):
      key = detection_pipeline.key_text(codes)
      if not key:  # padding of the last batch
        continue
      for box, labels, real in zip(arrays['gt_boxes'][i],
                                   arrays['gt_labels'][i],
                                   arrays['gt_mask'][i]):
        if real:
          groundtruth.extend((key, _xyxy(box), int(c) + 1)
                             for c in np.nonzero(labels)[0])
      for box, probs, real in zip(arrays['boxes'][i], arrays['probs'][i],
                                  arrays['box_mask'][i]):
        if real:
          detections.extend((key, _xyxy(box), c + 1, float(p))
                            for c, p in enumerate(probs))
    return groundtruth, detections

  def annotated_truth(self, evaluated_keys, excluded_keys):
    """(ground truth, boxes without a record) from task.groundtruth_csv:
    every box of the annotation file, as the official evaluator reads it;
    the boxes on keyframes that no record was evaluated for are counted."""
    path = self.task_config.groundtruth_csv
    rows, problems = ava_files.read_boxes(path)
    for problem in problems:
      logging.warning('task.groundtruth_csv: %s', problem)
    groundtruth = [(ava_files.keyframe_key(*r.keyframe), r.box, r.action_id)
                   for r in rows]
    # Excluded keyframes have no record by design and are skipped.
    missing = {(key, box) for key, box, _ in groundtruth
               if key not in evaluated_keys and key not in excluded_keys}
    if missing:
      logging.warning(
          'task.groundtruth_csv=%s: %d boxes are on keyframes with no '
          'evaluated record (counted as misses, as the official evaluator '
          'does)', path, len(missing))
    return groundtruth, len(missing)

  def reduce_aggregated_logs(self, aggregated_logs, global_step=None):
    groundtruth, detections = self.detections_and_truth(aggregated_logs)
    excluded, problems = ava_files.read_excluded(
        self.task_config.excluded_timestamps or None)
    for problem in problems:
      logging.warning('task.excluded_timestamps: %s', problem)
    excluded_keys = {ava_files.keyframe_key(*k) for k in excluded}
    without_record = None
    if self.task_config.groundtruth_csv:
      keys = {detection_pipeline.key_text(codes)
              for batch in aggregated_logs.get('key', []) for codes in batch}
      groundtruth, without_record = self.annotated_truth(keys - {''},
                                                         excluded_keys)
    ids, names = self.evaluated_classes()
    result = ava_map.evaluate(groundtruth, detections, ids, excluded_keys)
    step = int(global_step.numpy()) if global_step is not None else 0
    if self.logging_dir:
      tf.io.gfile.makedirs(self.logging_dir)
      table = os.path.join(self.logging_dir, f'ava_ap_step_{step}.csv')
      ava_map.write_per_class_csv(table, result, names)
      ava_files.write_detections(
          os.path.join(self.logging_dir, f'ava_detections_step_{step}.csv'),
          ((*key.rsplit(',', 1), box, c, score)
           for key, box, c, score in detections))
      logging.info('AVA frame mAP@0.5 %.4f over %d classes; per class: %s',
                   result.mean_ap, len(ids), table)
    logs = {'mAP': result.mean_ap,
            'detections_capped': float(result.capped_detections)}
    if without_record is not None:
      logs['groundtruth_without_record'] = float(without_record)
    logs.update({f'AP/{names[c]}': ap for c, ap in result.per_class_ap.items()
                 if not np.isnan(ap)})
    return logs

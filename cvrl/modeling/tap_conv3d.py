"""Conv3D as a sum of 2D convolutions over its temporal taps (for CPUs).

TensorFlow's CPU kernel for the filter gradient of a 3D convolution
(Conv3DBackpropFilterV2) falls, for some shapes, onto an Eigen path that
reads the input one coefficient at a time. For the R3D stem (5 x 7 x 7,
stride 2, 3 input channels) on 32 x 32 clips, forward + filter gradient
took 25-48 s at 16-32 clips of 15 frames where this takes 0.2-0.6 s, and
1.2-1.5x as long as this at the other shapes measured (`benchmarks/stem_conv.py`; figures,
date and machine in docs/benchmarks.md, "The stem on CPU"),
so a pretraining step of the small R3D took 45 s at batch 16 and 2.5 s at
batch 32. A kt x kh x kw convolution with temporal stride st is

  y[:, t] = sum_i conv2d(x[:, st * t + i * dt - pad], kernel[i])

(dt the temporal dilation, pad what 'same' puts before the first frame):
kt 2D convolutions on the clips' frames folded into the batch, whose
gradients are the fast 2D kernels'. The weights are the Conv3D's (same
variable, shape and name), so checkpoints do not depend on which
implementation ran. `r3d` uses `TapConv3D` only where no GPU or TPU is
visible: on those, XLA and cuDNN have good 3D convolutions of their own.
"""

import tensorflow as tf
import tf_keras


def temporal_padding(num_frames, kernel: int, stride: int, dilation: int,
                     padding: str):
  """(frames before, frames after, output frames) of a 3D convolution's
  temporal axis, as TensorFlow pads it ('same': the extra frame after)."""
  span = (kernel - 1) * dilation + 1
  if padding == 'valid':
    return 0, 0, (num_frames - span) // stride + 1
  out = (num_frames + stride - 1) // stride
  total = tf.maximum((out - 1) * stride + span - num_frames, 0)
  return total // 2, total - total // 2, out


def conv3d_as_taps(inputs, kernel, strides, padding: str, dilations):
  """tf.nn.conv3d(inputs, kernel, strides, padding, dilations) for
  channels-last 5D inputs, computed as a sum of 2D convolutions over the
  kernel's temporal taps. strides, dilations: (t, h, w); padding: 'same'
  or 'valid' (any case)."""
  padding = padding.lower()
  taps = kernel.shape[0]
  shape = tf.shape(inputs)
  before, after, out_frames = temporal_padding(
      shape[1], taps, strides[0], dilations[0], padding)
  if padding == 'same':
    inputs = tf.pad(inputs, [[0, 0], [before, after], [0, 0], [0, 0],
                             [0, 0]])
  channels = inputs.shape[-1]
  output = None
  for tap in range(taps):
    start = tap * dilations[0]
    frames = inputs[:, start:start + (out_frames - 1) * strides[0] + 1:
                    strides[0]]
    images = tf.reshape(frames, tf.concat([[-1], shape[2:4], [channels]], 0))
    # tf.nn.convolution: a dilated CPU conv2d has no filter gradient, so
    # dilations go through space-to-batch, as Keras' own layers do.
    term = tf.nn.convolution(images, kernel[tap], strides=strides[1:],
                             padding=padding.upper(),
                             dilations=dilations[1:])
    output = term if output is None else output + term
  return tf.reshape(output, tf.concat(
      [[shape[0], out_frames], tf.shape(output)[1:]], 0))


class TapConv3D(tf_keras.layers.Conv3D):
  """A Keras Conv3D (same weights, names, config) whose convolution runs
  as `conv3d_as_taps`; channels_last, no groups."""

  def convolution_op(self, inputs, kernel):
    if self.data_format != 'channels_last' or self.groups != 1:
      return super().convolution_op(inputs, kernel)
    return conv3d_as_taps(inputs, kernel, self.strides, self.padding,
                          self.dilation_rate)


def accelerator_visible() -> bool:
  """Whether the model is being built for a GPU or TPU (then Conv3D is
  used as is). The distribution strategy in scope decides when there is
  one (its workers' devices: a TPU pod's remote cores, or the CPU of a job
  that does not use the TPU its host shows, run without --tpu); else a
  local GPU or TPU. Physical devices only, so that building an encoder
  does not initialise the runtime (a user may still set GPU memory growth
  or logical devices)."""
  if tf.distribute.has_strategy():
    devices = tf.distribute.get_strategy().extended.worker_devices
    return any(tf.DeviceSpec.from_string(d).device_type in ('GPU', 'TPU')
               for d in devices)
  return any(tf.config.list_physical_devices(kind) for kind in ('GPU', 'TPU'))

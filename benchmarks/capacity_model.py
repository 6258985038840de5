r"""How many host CPU cores one accelerator needs to be fed, per input mode.

  .venv/bin/python benchmarks/capacity_model.py [--utilisation=0.4]
      [--host_core_ms=148.9 --device_core_ms=20.9 --model_garden_core_ms=561.4]

1. The paper's pretraining step, counted from the model: R3D-50 (Table 1)
   on two 16 x 224 x 224 clips per sample; multiply-adds of every Conv3D
   and Dense layer of the built Keras model (from its output shapes), x 2
   FLOPs; a training step is taken as 3x the forward pass (forward, and
   the gradients with respect to inputs and to weights); the projection
   head's few MFLOPs are included.
2. Samples/s one accelerator consumes: peak dense bfloat16 FLOP/s x
   --utilisation / FLOPs per sample.
3. Host cores that takes, per input mode: samples/s x core-ms per sample
   (benchmarks/input_pipeline.py prints core-ms/sample per mode; the
   defaults are its figures of 2026-11-30 18:31 on a 2-core AMD EPYC, AVX2,
   with the training command's malloc settings).
4. Next to the host CPU counts of the usual machines.

Peak figures are the vendors' dense bfloat16 numbers (no sparsity). The
host counts are vCPUs (hardware threads); a core-ms here is one of this
machine's 2 vCPUs busy for a millisecond.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Device mode's bytes a sample: the buffer of a batch of 8 at its default
# device_budget (0.75: window_buffer.auto_budget) of 256 x 456 views, / 8.
DEVICE_BYTES = 8_405_163
# (name, peak dense bf16 TFLOP/s of one device, devices per host, host vCPUs)
ACCELERATORS = (
    ('TPU v3 core (v3-8 host: 8 cores)', 61.5, 8, 96),
    ('TPU v4 chip (v4-8 host: 4 chips)', 275.0, 4, 240),
    ('A100 SXM (8-GPU node, 2 x 64-core EPYC)', 312.0, 8, 256),
    ('H100 SXM (8-GPU node, 2 x 56-core Xeon)', 989.0, 8, 224),
)


def training_flops_per_sample(frames=16, size=224, depth=50, width=1.0):
  """(forward FLOPs of one clip, training FLOPs of one two-clip sample)."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from cvrl.configs import modeling  # pylint: disable=g-import-not-at-top
  from cvrl.modeling import r3d  # pylint: disable=g-import-not-at-top
  model = r3d.build_r3d(modeling.R3DConfig(depth=depth,
                                           width_multiplier=width),
                        (frames, size, size, 3))
  macs = 0
  for layer in model.layers:
    if isinstance(layer, tf_keras.layers.Conv3D):
      kernel = layer.kernel.shape  # [t, h, w, in, out]
      out = layer.output.shape     # [None, T, H, W, out]
      macs += (out[1] * out[2] * out[3] * out[4]
               * kernel[0] * kernel[1] * kernel[2] * kernel[3])
  features = r3d.feature_dim(modeling.R3DConfig(depth=depth,
                                                width_multiplier=width))
  head = features * 2048 + 2048 * 2048 + 2048 * 128  # the 3-layer MLP
  forward = 2 * (macs + head)
  return forward, 3 * 2 * forward


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--utilisation', type=float, default=0.4)
  parser.add_argument('--host_core_ms', type=float, default=148.9)
  parser.add_argument('--device_core_ms', type=float, default=20.9)
  parser.add_argument('--model_garden_core_ms', type=float, default=561.4)
  parser.add_argument('--device_bytes', type=int, default=DEVICE_BYTES,
                      help='device mode bytes per sample (the buffer at '
                      'default device_budget of 256 x 456 views, batch 8)')
  args = parser.parse_args()
  forward, train = training_flops_per_sample()
  print(f'R3D-50, 16 x 224 x 224: {forward / 1e9:.1f} GFLOPs forward per '
        f'clip; {train / 1e9:.0f} GFLOPs per training sample (2 clips, 3x '
        f'forward); utilisation {args.utilisation:.0%}')
  modes = (('host', args.host_core_ms), ('device', args.device_core_ms),
           ('Model Garden', args.model_garden_core_ms))
  print('| accelerator (host) | samples/s per device | host vCPUs | '
        'vCPUs to feed them: host mode | device mode | Model Garden | '
        'device mode, GB/s to the devices |')
  print('|---|---:|---:|---:|---:|---:|---:|')
  for name, tflops, per_host, vcpus in ACCELERATORS:
    rate = tflops * 1e12 * args.utilisation / train
    needs = [rate * per_host * ms / 1000 for _, ms in modes]
    gbps = rate * per_host * args.device_bytes / 1e9
    print(f'| {name} | {rate:.0f} | {vcpus} | '
          + ' | '.join(f'{n:.0f}' for n in needs)
          + f' | {gbps:.1f} |')


if __name__ == '__main__':
  main()

"""CVRL in TensorFlow 2: spatiotemporal contrastive video representation learning."""

import setuptools

setuptools.setup(
    name='cvrl-tf2',
    version='0.1.0',
    description='CVRL (Qian et al., CVPR 2021) in TensorFlow 2 / Keras for TPU, '
                'GPU and CPU, with Kinetics-to-TFRecord tools.',
    packages=setuptools.find_packages(include=['cvrl', 'cvrl.*',
                                               'tfrecords_tools',
                                               'tfrecords_tools.*']),
    python_requires='>=3.10',
    install_requires=[
        'tensorflow~=2.20.0',
        'tf-models-official~=2.20.0',
        'tf-keras~=2.20.0',
        'absl-py',
        'tensorflow-datasets',
        # The converter's output depends on FFmpeg's decoding and threading
        # (PyAV's wheels bundle FFmpeg) and on Pillow's libjpeg: ranges the
        # suite ran with (docs/dependencies.md), widened only once tested.
        'av~=18.1',
        'Pillow~=13.0',
        'numpy>=2.0,<3',
        # Conversion workers with per-task deadlines that notice dead workers
        # (tfrecords_tools/conversion/worker_pool.py).
        'pebble~=5.2',
        # apache-beam[tfrecord] (extra `beam`) needs protobuf < 7; pinning it
        # here keeps both extras installable into one environment.
        'protobuf<7',
        'tqdm',  # progress of feature export
        'scipy',  # the linear probe's L-BFGS (cvrl.eval.probe)
        # CRC-32C of TFRecord framing, for records streamed from a spill
        # file (a long video never held in memory; benchmarks/convert_memory).
        'google-crc32c~=1.9',
    ],
    extras_require={
        # pytest-timeout: every test has a deadline (pytest.ini), so a test
        # that hangs fails with its name instead of running into CI's limit.
        'test': ['pytest', 'pytest-xdist', 'pytest-timeout~=2.4'],
        'beam': ['apache-beam[tfrecord]~=2.78'],
    },
    entry_points={
        'console_scripts': [
            'cvrl-train=cvrl.tools.train:run',
            'cvrl-export-features=cvrl.tools.export_features:run_main',
            'cvrl-export-model=cvrl.tools.export_model:run_main',
            'cvrl-probe=cvrl.tools.probe:run_main',
            'cvrl-retrieval=cvrl.tools.retrieval:run_main',
            'cvrl-eval-report=cvrl.tools.eval_report:run_main',
            'cvrl-run-summary=cvrl.tools.run_summary:run_main',
            'cvrl-ava-eval=cvrl.tools.ava_eval:run_main',
            'cvrl-inflate-imagenet=cvrl.tools.inflate_imagenet:run_main',
            'cvrl-convert-videos=tfrecords_tools.convert_videos:run_main',
            'cvrl-convert-ava=tfrecords_tools.convert_ava:run_main',
            'cvrl-inspect-tfrecords=tfrecords_tools.inspect_tfrecords:run_main',
            'cvrl-make-subset=tfrecords_tools.make_subset:run_main',
            'cvrl-make-synthetic=tfrecords_tools.make_synthetic:run_main',
            'cvrl-make-synthetic-ava=tfrecords_tools.make_synthetic_ava:run_main',
        ],
    },
)

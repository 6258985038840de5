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
        'av>=13',  # VideoFrame.rotation (display matrix) needs PyAV 13+.
        'Pillow',
        'numpy',
        # apache-beam[tfrecord] (extra `beam`) needs protobuf < 7; pinning it
        # here keeps both extras installable into one environment.
        'protobuf<7',
        'tqdm',  # progress of feature export
        # CRC-32C of TFRecord framing, for records streamed from a spill
        # file (a long video never held in memory; benchmarks/convert_memory).
        'google-crc32c',
    ],
    extras_require={
        'test': ['pytest', 'pytest-xdist', 'scipy'],
        'beam': ['apache-beam[tfrecord]'],
    },
    entry_points={
        'console_scripts': [
            'cvrl-convert-videos=tfrecords_tools.convert_videos:run_main',
        ],
    },
)

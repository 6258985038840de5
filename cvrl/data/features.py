"""Feature keys of the video TFRecords (tf.train.SequenceExample).

One place for the names that the converter writes and the input pipelines read.
They follow DMVR's conventions and are exactly the defaults of Model Garden's
`official.vision.dataloaders.video_input.Decoder` (image key `image/encoded`,
label key `clip/label/index`), so records written by `tfrecords_tools` can be
read by either project unchanged.
"""

# Sequence feature: one JPEG-encoded RGB frame per element, in presentation order.
IMAGE_KEY = 'image/encoded'

# Context features.
LABEL_INDEX_KEY = 'clip/label/index'  # int64; -1 when the video has no label.
LABEL_TEXT_KEY = 'clip/label/text'  # bytes; '' when the video has no label.
CLIP_ID_KEY = 'clip/id'  # bytes; unique within a dataset.
FILENAME_KEY = 'video/filename'  # bytes; the source file's path.
START_TIMESTAMP_KEY = 'clip/start/timestamp'  # int64 microseconds in the source.
END_TIMESTAMP_KEY = 'clip/end/timestamp'  # int64 microseconds in the source.
FPS_KEY = 'video/fps'  # float; frame rate of the stored frames.
NUM_FRAMES_KEY = 'video/num_frames'  # int64; length of IMAGE_KEY.
HEIGHT_KEY = 'video/height'  # int64; stored frame height.
WIDTH_KEY = 'video/width'  # int64; stored frame width.

INT64_CONTEXT_KEYS = (LABEL_INDEX_KEY, START_TIMESTAMP_KEY, END_TIMESTAMP_KEY,
                      NUM_FRAMES_KEY, HEIGHT_KEY, WIDTH_KEY)
BYTES_CONTEXT_KEYS = (LABEL_TEXT_KEY, CLIP_ID_KEY, FILENAME_KEY)
FLOAT_CONTEXT_KEYS = (FPS_KEY,)

NO_LABEL = -1

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

# AVA keyframe records (`tfrecords_tools.convert_ava`): the clip above plus,
# in the context, the keyframe and its boxes. CLIP_ID_KEY holds the
# evaluator's keyframe key 'video_id,%04d'.
MEDIA_ID_KEY = 'clip/media_id'  # bytes; the AVA movie id.
KEYFRAME_TIMESTAMP_KEY = 'clip/keyframe/timestamp'  # int64; AVA second.
KEYFRAME_INDEX_KEY = 'clip/keyframe/index'  # int64; the keyframe's frame.
# Ground-truth boxes (normalised; BOX_PREFIX + '/xmin' etc., one per box),
# their actions as flat (label, box index) pairs, and person ids.
BOX_PREFIX = 'region/bbox'
BOX_LABEL_INDEX_KEY = 'region/label/index'  # int64 list; AVA action ids.
BOX_LABEL_BOX_KEY = 'region/label/box'  # int64 list; box of each action.
BOX_PERSON_ID_KEY = 'region/person_id'  # int64 list; one per box.
# Person proposals of a detector, highest score first.
PROPOSAL_PREFIX = 'proposal/bbox'
PROPOSAL_SCORE_KEY = 'proposal/score'  # float list; one per proposal.
BOX_COORDINATES = ('xmin', 'ymin', 'xmax', 'ymax')

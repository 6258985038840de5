"""Video -> TFRecord conversion: sources, decoding, frames, shards, jobs."""

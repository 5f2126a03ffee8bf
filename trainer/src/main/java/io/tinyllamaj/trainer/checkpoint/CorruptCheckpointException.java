package io.tinyllamaj.trainer.checkpoint;

import java.io.IOException;

/** A checkpoint that is incomplete or fails its checksums; the message names the file. */
public final class CorruptCheckpointException extends IOException {
    public CorruptCheckpointException(String message) {
        super(message);
    }
}

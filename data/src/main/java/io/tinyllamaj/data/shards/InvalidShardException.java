package io.tinyllamaj.data.shards;

import java.io.IOException;
import java.nio.file.Path;

/** A token shard that must not be trained on; the message names the file and the reason. */
public final class InvalidShardException extends IOException {
    public InvalidShardException(Path file, String reason) {
        super(file + ": " + reason);
    }
}

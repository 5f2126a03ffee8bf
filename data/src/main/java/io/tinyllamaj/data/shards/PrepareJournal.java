package io.tinyllamaj.data.shards;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.files.DurableFiles;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * {@code DIR/prepare-journal.json}: the shards an unfinished run has committed and how many
 * input documents they hold, rewritten atomically after each shard (and once before the first,
 * to claim the directory). A restarted run with the same inputs, tokenizer and shard size keeps
 * those shards and skips their documents without tokenizing them again. Deleted once the
 * manifest is written.
 */
record PrepareJournal(
        String fingerprint,
        @JsonProperty("documents_done") long documentsDone,
        List<ShardManifest.Shard> shards) {

    static final String FILE_NAME = "prepare-journal.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    PrepareJournal {
        if (shards == null || shards.stream().anyMatch(Objects::isNull)) {
            throw new IllegalArgumentException("\"shards\" is not a list of shard entries");
        }
        shards = List.copyOf(shards);
    }

    static PrepareJournal empty(String fingerprint) {
        return new PrepareJournal(fingerprint, 0, List.of());
    }

    PrepareJournal plus(ShardManifest.Shard shard) {
        List<ShardManifest.Shard> all = new ArrayList<>(shards);
        all.add(shard);
        return new PrepareJournal(fingerprint, documentsDone + shard.documents(), all);
    }

    /** The journal saved in {@code directory}; one line naming the file when it cannot be read. */
    static PrepareJournal read(Path directory) throws IOException {
        Path file = directory.resolve(FILE_NAME);
        try {
            return JSON.readValue(file.toFile(), PrepareJournal.class);
        } catch (JsonProcessingException e) {
            throw new IOException(file + ": unreadable (" + e.getOriginalMessage().lines().findFirst().orElse("")
                    + "); nothing was changed; delete the directory or choose another output directory", e);
        }
    }

    void write(Path directory) throws IOException {
        DurableFiles.SYSTEM.replace(directory.resolve(FILE_NAME), JSON.writeValueAsBytes(this));
    }
}

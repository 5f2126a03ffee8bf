package io.tinyllamaj.data.shards;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code DIR/prepare-journal.json}: the shards an unfinished run has committed and how many
 * input documents they hold, rewritten atomically after each shard. A restarted run with the
 * same inputs, tokenizer and shard size keeps those shards and skips their documents without
 * tokenizing them again. Deleted once the manifest is written.
 */
record PrepareJournal(
        String fingerprint,
        @JsonProperty("documents_done") long documentsDone,
        List<ShardManifest.Shard> shards) {

    static final String FILE_NAME = "prepare-journal.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    PrepareJournal {
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

    /**
     * The journal to continue from: the saved one when it belongs to this preparation and its
     * shards are intact on disk, otherwise a fresh start.
     */
    static PrepareJournal resume(Path directory, String fingerprint) throws IOException {
        Path file = directory.resolve(FILE_NAME);
        if (!Files.isRegularFile(file)) {
            return empty(fingerprint);
        }
        PrepareJournal saved;
        try {
            saved = JSON.readValue(file.toFile(), PrepareJournal.class);
        } catch (IOException e) {
            return empty(fingerprint);
        }
        if (!fingerprint.equals(saved.fingerprint())) {
            throw new IOException(directory + ": holds an unfinished preparation of other inputs, tokenizer or shard size;"
                    + " delete it or choose another --out");
        }
        PrepareJournal kept = empty(fingerprint);
        for (ShardManifest.Shard shard : saved.shards()) {
            Path shardFile = directory.resolve(shard.file());
            if (!Files.isRegularFile(shardFile) || Files.size(shardFile) != shard.bytes()
                    || !ArrowTokenShard.sha256(shardFile).equals(shard.sha256())) {
                break;
            }
            kept = kept.plus(shard);
        }
        return kept;
    }

    void write(Path directory) throws IOException {
        AtomicFiles.write(directory.resolve(FILE_NAME), JSON.writeValueAsBytes(this));
    }
}

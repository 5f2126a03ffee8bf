package io.tinyllamaj.data.shards;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.tinyllamaj.files.DurableFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * {@code DIR/manifest.json}: what a prepared shard directory holds. Written last, atomically,
 * so its presence means every shard it lists is complete. Readers check each shard against it,
 * and refuse an entry that is missing or names a path outside the directory.
 */
public record ShardManifest(
        String format,
        int version,
        String source,
        String tokenizer,
        @JsonProperty("vocab_size") int vocabSize,
        @JsonProperty("eos_id") int eosId,
        String framing,
        long documents,
        long tokens,
        List<Shard> shards) {

    public static final String FORMAT = "tinyllamaj-token-shards";
    public static final int VERSION = 1;
    public static final String FILE_NAME = "manifest.json";
    /** The framing rule, stated in the manifest so that a reader never has to guess it. */
    public static final String FRAMING = "ids+eos";

    /** One shard file: its name in the directory, what it holds and its SHA-256. */
    public record Shard(String file, long documents, long tokens, long bytes, String sha256) {
    }

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    public static ShardManifest read(Path directory) throws IOException {
        Path file = directory.resolve(FILE_NAME);
        if (!Files.isRegularFile(file)) {
            throw new InvalidShardException(directory, "no " + FILE_NAME + " (preparation incomplete, or not a shard directory)");
        }
        ShardManifest manifest;
        try {
            manifest = JSON.readValue(file.toFile(), ShardManifest.class);
        } catch (IOException e) {
            throw new InvalidShardException(file, "unreadable manifest: " + e.getMessage().lines().findFirst().orElse(""));
        }
        if (!FORMAT.equals(manifest.format())) {
            throw new InvalidShardException(file, "format '" + manifest.format() + "', expected '" + FORMAT + "'");
        }
        if (manifest.version() != VERSION) {
            throw new InvalidShardException(file, "format version " + manifest.version() + ", this build reads " + VERSION);
        }
        checkShardEntries(file, directory, manifest.shards());
        return manifest;
    }

    /** Every entry present and naming a file inside the directory: a hostile manifest reads nothing elsewhere. */
    private static void checkShardEntries(Path file, Path directory, List<Shard> shards) throws InvalidShardException {
        if (shards == null) {
            throw new InvalidShardException(file, "no \"shards\" list");
        }
        Path inside = directory.toAbsolutePath().normalize();
        for (int i = 0; i < shards.size(); i++) {
            Shard shard = shards.get(i);
            if (shard == null) {
                throw new InvalidShardException(file, "shard " + i + " is null");
            }
            if (shard.file() == null) {
                throw new InvalidShardException(file, "shard " + i + " has no \"file\"");
            }
            if (!inside.resolve(shard.file()).normalize().startsWith(inside)) {
                throw new InvalidShardException(file, "shard path " + shard.file() + " escapes the directory");
            }
        }
    }

    public void write(Path directory) throws IOException {
        DurableFiles.SYSTEM.replace(directory.resolve(FILE_NAME), JSON.writeValueAsBytes(this));
    }
}

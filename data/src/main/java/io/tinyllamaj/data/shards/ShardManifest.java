package io.tinyllamaj.data.shards;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.tinyllamaj.files.DurableFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

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
        JsonNode tree;
        try {
            tree = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw unreadable(file, e);
        }
        // "null", "[]" or an empty file would otherwise bind to a null manifest or fail later unnamed
        if (tree == null || !tree.isObject()) {
            throw new InvalidShardException(file, "not a JSON object");
        }
        ShardManifest manifest;
        try {
            manifest = JSON.treeToValue(tree, ShardManifest.class);
        } catch (IOException e) {
            throw unreadable(file, e);
        }
        if (!FORMAT.equals(manifest.format())) {
            throw new InvalidShardException(file, "format '" + manifest.format() + "', expected '" + FORMAT + "'");
        }
        if (manifest.version() != VERSION) {
            throw new InvalidShardException(file, "format version " + manifest.version() + ", this build reads " + VERSION);
        }
        checkShardEntries(file, directory, manifest.shards());
        manifest.checkFields(file, tree.has("documents"));
        return manifest;
    }

    private static InvalidShardException unreadable(Path file, IOException e) {
        return new InvalidShardException(file, "unreadable manifest: " + escaped(e.getMessage().lines().findFirst().orElse("")));
    }

    /**
     * Every entry present, naming a file inside the directory, and each file once: a hostile
     * manifest reads nothing elsewhere, and no data is trained on twice.
     */
    private static void checkShardEntries(Path file, Path directory, List<Shard> shards) throws InvalidShardException {
        if (shards == null) {
            throw new InvalidShardException(file, "no \"shards\" list");
        }
        Path inside = directory.toAbsolutePath().normalize();
        Map<Path, Integer> seen = new HashMap<>();
        for (int i = 0; i < shards.size(); i++) {
            Shard shard = shards.get(i);
            if (shard == null) {
                throw new InvalidShardException(file, "shard " + i + " is null");
            }
            if (shard.file() == null) {
                throw new InvalidShardException(file, "shard " + i + " has no \"file\"");
            }
            Path resolved = resolve(file, inside, i, shard.file());
            if (!resolved.startsWith(inside)) {
                throw new InvalidShardException(file, "shard path " + shard.file() + " escapes the directory");
            }
            Integer first = seen.putIfAbsent(resolved, i);
            if (first != null) {
                throw new InvalidShardException(file, "shard " + i + " lists " + shard.file() + ", the same file as shard "
                        + first + " (" + shards.get(first).file() + ")");
            }
            if (shard.documents() < 0 || shard.tokens() < 0 || shard.bytes() < 0) {
                throw new InvalidShardException(file, "shard " + i + " (" + shard.file() + ") has a negative count ("
                        + shard.documents() + " documents, " + shard.tokens() + " tokens, " + shard.bytes() + " bytes)");
            }
        }
    }

    /** The entry's file in the directory; a name with control characters is refused, and printed escaped. */
    private static Path resolve(Path file, Path inside, int index, String name) throws InvalidShardException {
        if (!escaped(name).equals(name)) {
            throw new InvalidShardException(file, "shard " + index + " file name \"" + escaped(name) + "\" has a control character");
        }
        try {
            return inside.resolve(name).normalize();
        } catch (InvalidPathException e) {
            throw new InvalidShardException(file, "shard " + index + " file name \"" + name + "\" is not a path (" + e.getReason() + ")");
        }
    }

    /** {@code text} with control characters (NUL, newlines, ESC) as Java unicode escapes: one line stays one line. */
    static String escaped(String text) {
        StringBuilder out = new StringBuilder(text.length());
        text.chars().forEach(c -> out.append(Character.isISOControl(c) ? String.format("\\u%04x", c) : String.valueOf((char) c)));
        return out.toString();
    }

    /** The values the writer can produce: its framing, an EOS inside the vocabulary, counts that add up. */
    private void checkFields(Path file, boolean hasDocumentTotal) throws InvalidShardException {
        if (!FRAMING.equals(framing)) {
            throw new InvalidShardException(file, "framing " + (framing == null ? "missing" : "'" + escaped(framing) + "'")
                    + ", this build reads '" + FRAMING + "'");
        }
        if (vocabSize < 1) {
            throw new InvalidShardException(file, "vocab_size " + vocabSize + " is not positive");
        }
        if (eosId < 0 || eosId >= vocabSize) {
            throw new InvalidShardException(file, "eos_id " + eosId + " is outside the vocabulary [0, " + vocabSize + ")");
        }
        if (documents < 0 || tokens < 0) {
            throw new InvalidShardException(file, "negative total (" + documents + " documents, " + tokens + " tokens)");
        }
        if (hasDocumentTotal) {
            long sum = 0;
            for (Shard shard : shards) {
                sum += shard.documents(); // each is at least 0: a sum past Long.MAX_VALUE turns negative
                if (sum < 0) {
                    break;
                }
            }
            if (sum != documents) {
                throw new InvalidShardException(file, "shards hold " + (sum < 0 ? "more than " + Long.MAX_VALUE : sum)
                        + " documents, the total says " + documents);
            }
        }
    }

    public void write(Path directory) throws IOException {
        DurableFiles.SYSTEM.replace(directory.resolve(FILE_NAME), JSON.writeValueAsBytes(this));
    }
}

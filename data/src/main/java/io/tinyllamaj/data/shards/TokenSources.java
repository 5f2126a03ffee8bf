package io.tinyllamaj.data.shards;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.PatternSyntaxException;
import java.util.stream.Stream;

/**
 * Opens training data for the trainer: a directory written by {@code prepare} (it has a
 * {@code manifest.json}), or lit-gpt {@code .bin} chunks given as a directory or a glob such as
 * {@code data/train_slimpajama*.bin} (TinyLlama keeps both corpora in one folder and tells them
 * apart by prefix). Everything that can be checked without reading the tokens is always
 * checked, and every token id is checked as it is read; {@link Verification#FULL} also hashes
 * every shard and reads every token at open.
 */
public final class TokenSources {
    private TokenSources() {
    }

    /**
     * @param location  a shard directory, a directory of .bin chunks, or a glob of .bin chunks
     * @param vocabSize the model's vocabulary size: every token id must be below it
     */
    public static TokenSource open(String location, int vocabSize, Verification verification) throws IOException {
        Path path = Path.of(location);
        if (Files.isRegularFile(path.resolve(ShardManifest.FILE_NAME))) {
            return openShardDirectory(path, vocabSize, verification);
        }
        List<Path> chunks = binChunks(location);
        if (chunks.isEmpty()) {
            throw new InvalidShardException(path, "no " + ShardManifest.FILE_NAME
                    + " and no .bin chunks (run 'tinyllama prepare', or point at lit-gpt .bin files)");
        }
        return openPackedChunks(location, chunks, vocabSize, verification);
    }

    static TokenSource openShardDirectory(Path directory, int vocabSize, Verification verification) throws IOException {
        ShardManifest manifest = ShardManifest.read(directory);
        Path manifestFile = directory.resolve(ShardManifest.FILE_NAME);
        if (manifest.vocabSize() > vocabSize) {
            throw new InvalidShardException(manifestFile, "tokenized with a vocabulary of " + manifest.vocabSize()
                    + ", the model has " + vocabSize);
        }
        long total = manifest.shards().stream().mapToLong(ShardManifest.Shard::tokens).sum();
        if (total != manifest.tokens()) {
            throw new InvalidShardException(manifestFile, "shards hold " + total + " tokens, the total says " + manifest.tokens());
        }
        List<ArrowTokenShard> shards = new ArrayList<>();
        Map<Object, Path> files = new HashMap<>();
        try {
            for (ShardManifest.Shard entry : manifest.shards()) {
                ArrowTokenShard shard = openShard(directory, entry, manifest.vocabSize(), verification);
                shards.add(shard);
                requireNotSeen(files, Path.of(shard.name()));
            }
        } catch (IOException | RuntimeException e) {
            shards.forEach(ArrowTokenShard::close);
            throw e;
        }
        return new ConcatenatedSource(directory.toString(), shards);
    }

    /**
     * The manifest names each file once (ShardManifest checks the names); this catches two names
     * that are links to one file, whose data would otherwise be trained on twice.
     */
    private static void requireNotSeen(Map<Object, Path> files, Path file) throws IOException {
        Object key = Files.readAttributes(file, BasicFileAttributes.class).fileKey();
        Path earlier = key == null ? null : files.putIfAbsent(key, file);
        if (earlier != null) {
            throw new InvalidShardException(file, "is the same file as " + earlier.getFileName()
                    + " (a link), listed twice in the manifest");
        }
    }

    private static ArrowTokenShard openShard(Path directory, ShardManifest.Shard entry, int vocabSize,
                                             Verification verification) throws IOException {
        Path file = directory.resolve(entry.file());
        if (!Files.isRegularFile(file)) {
            throw new InvalidShardException(file, "listed in the manifest but missing");
        }
        long size = Files.size(file);
        if (size != entry.bytes()) {
            throw new InvalidShardException(file, size + " bytes, the manifest says " + entry.bytes());
        }
        if (verification == Verification.FULL) {
            String sha256 = ArrowTokenShard.sha256(file);
            if (!sha256.equals(entry.sha256())) {
                throw new InvalidShardException(file, "SHA-256 " + sha256 + " does not match the manifest's " + entry.sha256());
            }
        }
        ArrowTokenShard shard = ArrowTokenShard.open(file, vocabSize);
        try {
            if (shard.tokenCount() != entry.tokens()) {
                throw new InvalidShardException(file, shard.tokenCount() + " tokens, the manifest says " + entry.tokens());
            }
            if (verification == Verification.FULL) {
                checkTokenRange(shard);
            }
            return shard;
        } catch (IOException | RuntimeException e) {
            shard.close();
            throw e;
        }
    }

    /** Of {@code ranges} consecutive ranges beginning at {@code starts[i]}, the one holding {@code offset}. */
    static int rangeOf(long[] starts, int ranges, long offset) {
        int low = 0;
        int high = ranges - 1;
        while (low < high) {
            int mid = (low + high + 1) >>> 1;
            if (starts[mid] <= offset) {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        return low;
    }

    /** Refuses a read of {@code [offset, offset + length)} from a source of {@code tokens} tokens named {@code name}. */
    static void requireRange(String name, long offset, int length, long tokens) {
        if (offset < 0 || length < 0 || offset + length > tokens) {
            throw new IndexOutOfBoundsException(name + ": tokens [" + offset + ", " + (offset + length)
                    + ") outside [0, " + tokens + ")");
        }
    }

    /** Refuses {@code source} if any token id is outside its vocabulary, by reading every token (each read checks them). */
    static void checkTokenRange(TokenSource source) throws InvalidShardException {
        int[] chunk = new int[1 << 16];
        try {
            for (long position = 0; position < source.tokenCount(); position += chunk.length) {
                source.read(position, chunk, 0, (int) Math.min(chunk.length, source.tokenCount() - position));
            }
        } catch (UncheckedIOException e) {
            if (e.getCause() instanceof InvalidShardException invalid) {
                throw invalid;
            }
            throw e;
        }
    }

    /**
     * Shards check every id they hand out, so that an id the model cannot embed stops training
     * with the file and position named, whether or not the directory was fully verified at open.
     */
    static void requireInVocabulary(Path file, int[] ids, int from, int count, long position, int vocabSize) {
        for (int i = from; i < from + count; i++) {
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw outsideVocabulary(file, ids[i], position + i - from, vocabSize);
            }
        }
    }

    static UncheckedIOException outsideVocabulary(Path file, long id, long position, int vocabSize) {
        InvalidShardException error = new InvalidShardException(file, "token " + id + " at position " + position
                + " is outside the vocabulary of " + vocabSize);
        return new UncheckedIOException(error.getMessage(), error);
    }

    private static TokenSource openPackedChunks(String location, List<Path> chunks, int vocabSize,
                                                Verification verification) throws IOException {
        List<PackedBinShard> shards = new ArrayList<>();
        try {
            for (Path chunk : chunks) {
                PackedBinShard shard = PackedBinShard.open(chunk, vocabSize);
                shards.add(shard);
                PackedBinShard first = shards.getFirst();
                if (shard.dtype() != first.dtype() || shard.tokenCount() != first.tokenCount()) {
                    throw new InvalidShardException(chunk, "header (" + shard.dtype() + ", chunk size " + shard.tokenCount()
                            + ") differs from " + first.name() + " (" + first.dtype() + ", " + first.tokenCount() + ")");
                }
                if (verification == Verification.FULL) {
                    checkTokenRange(shard);
                }
            }
        } catch (IOException | RuntimeException e) {
            shards.forEach(PackedBinShard::close);
            throw e;
        }
        return new ConcatenatedSource(location, shards);
    }

    private static List<Path> binChunks(String location) throws IOException {
        Path path = Path.of(location);
        if (Files.isDirectory(path)) {
            try (Stream<Path> files = Files.list(path)) {
                return files.filter(f -> f.getFileName().toString().endsWith(".bin")).sorted().toList();
            }
        }
        Path parent = path.toAbsolutePath().getParent();
        if (parent == null || !Files.isDirectory(parent)) {
            return List.of();
        }
        PathMatcher matcher;
        try {
            matcher = FileSystems.getDefault().getPathMatcher("glob:" + path.getFileName());
        } catch (PatternSyntaxException e) {
            throw new InvalidShardException(path, "not a valid glob (" + e.getDescription().replace("'", "") + ")");
        }
        try (Stream<Path> files = Files.list(parent)) {
            return files.filter(f -> matcher.matches(f.getFileName()) && Files.isRegularFile(f)).sorted().toList();
        }
    }
}

package io.tinyllamaj.data.shards;

import io.tinyllamaj.files.DurableFiles;
import io.tinyllamaj.files.DirectoryLock;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The output directory of {@code prepare} and what a run may do in it. A run writes only into
 * a new or empty directory, or one holding its own earlier run: a journal, or a finished
 * manifest, with the same fingerprint of inputs, tokenizer and settings. It touches only the
 * files it writes (shards, journal, fingerprint, manifest and their temporaries); anything else
 * makes it refuse before a byte changes.
 */
final class PrepareDirectory {
    static final String FINGERPRINT_FILE = ".prepare-fingerprint";
    private static final Pattern OWN_FILE = Pattern.compile(
            "shard-\\d{5}\\.arrow|" + Pattern.quote(PrepareJournal.FILE_NAME) + "|"
                    + Pattern.quote(ShardManifest.FILE_NAME) + "|" + Pattern.quote(FINGERPRINT_FILE));
    private static final int LISTED_FILES = 3;

    private PrepareDirectory() {
    }

    static String shardName(int index) {
        return String.format("shard-%05d.arrow", index);
    }

    /** The manifest of a finished run of this preparation, or null when there is none; refuses another run's. */
    static ShardManifest finishedRun(Path out, String fingerprint) throws IOException {
        if (Files.notExists(out)) {
            return null;
        }
        if (!Files.isDirectory(out)) {
            throw new IOException(out + ": not a directory");
        }
        if (!Files.isRegularFile(out.resolve(ShardManifest.FILE_NAME))) {
            return null;
        }
        Path saved = out.resolve(FINGERPRINT_FILE);
        if (Files.isRegularFile(saved) && Files.readString(saved).strip().equals(fingerprint)) {
            return ShardManifest.read(out);
        }
        throw new IOException(out + ": holds prepared shards of other inputs, tokenizer or settings; nothing was changed;"
                + " delete it or choose another output directory");
    }

    /**
     * Where an unfinished run of this preparation stopped: its journal cut to the shards intact
     * on disk (its own leftover temporaries removed), or an empty journal for a new or empty
     * directory. Refuses any other directory. Call after {@link #finishedRun} found none.
     */
    static PrepareJournal unfinishedRun(Path out, String fingerprint) throws IOException {
        if (Files.notExists(out)) {
            return PrepareJournal.empty(fingerprint);
        }
        if (!Files.isRegularFile(out.resolve(PrepareJournal.FILE_NAME))) {
            refuseIfNotEmpty(out);
            return PrepareJournal.empty(fingerprint);
        }
        PrepareJournal saved = PrepareJournal.read(out);
        if (!fingerprint.equals(saved.fingerprint())) {
            throw new IOException(out + ": holds an unfinished preparation of other inputs, tokenizer or settings;"
                    + " nothing was changed; delete it or choose another output directory");
        }
        deleteOwnTemporaries(out);
        return intactShards(out, saved);
    }

    /** The journal's leading shards that are on disk as written, under the names this run gives them. */
    private static PrepareJournal intactShards(Path out, PrepareJournal saved) throws IOException {
        PrepareJournal kept = PrepareJournal.empty(saved.fingerprint());
        for (ShardManifest.Shard shard : saved.shards()) {
            Path file = out.resolve(shardName(kept.shards().size()));
            if (!file.getFileName().toString().equals(shard.file()) || !Files.isRegularFile(file)
                    || Files.size(file) != shard.bytes() || !ArrowTokenShard.sha256(file).equals(shard.sha256())) {
                break;
            }
            kept = kept.plus(shard);
        }
        return kept;
    }

    /** Whether the directory holds a preparation's journal or manifest: one prepare claimed it. */
    static boolean isOwnRun(Path out) {
        return Files.isRegularFile(out.resolve(PrepareJournal.FILE_NAME))
                || Files.isRegularFile(out.resolve(ShardManifest.FILE_NAME));
    }

    /** Makes the directory this run's before its first file goes in: created if need be, and journaled. */
    static void claim(Path out, PrepareJournal journal) throws IOException {
        Files.createDirectories(out);
        journal.write(out);
    }

    /** Records a complete run: the fingerprint, then the manifest (whose presence means done), then drops the journal. */
    static void finish(Path out, String fingerprint, ShardManifest manifest) throws IOException {
        DurableFiles.SYSTEM.replace(out.resolve(FINGERPRINT_FILE), (fingerprint + "\n").getBytes(StandardCharsets.UTF_8));
        manifest.write(out);
        Files.deleteIfExists(out.resolve(PrepareJournal.FILE_NAME));
    }

    private static void refuseIfNotEmpty(Path out) throws IOException {
        List<String> names;
        try (Stream<Path> files = Files.list(out)) {
            names = files.map(file -> file.getFileName().toString())
                    .filter(name -> !name.equals(DirectoryLock.FILE)) // a failed run's lock, or this run's own
                    .sorted().toList();
        }
        if (names.isEmpty()) {
            return;
        }
        String listed = String.join(", ", names.subList(0, Math.min(LISTED_FILES, names.size())))
                + (names.size() > LISTED_FILES ? " and " + (names.size() - LISTED_FILES) + " more" : "");
        throw new IOException(out + ": holds files prepare did not write (" + listed + "); it writes only into a new or"
                + " empty directory or one holding its own run; choose another output directory");
    }

    /** Temporaries of the files this run writes: torn by an interruption, never anyone else's. */
    private static void deleteOwnTemporaries(Path out) throws IOException {
        try (Stream<Path> files = Files.list(out)) {
            for (Path file : files.filter(PrepareDirectory::isOwnTemporary).toList()) {
                Files.delete(file);
            }
        }
    }

    private static boolean isOwnTemporary(Path file) {
        String name = file.getFileName().toString();
        return name.endsWith(DurableFiles.TEMP_SUFFIX)
                && OWN_FILE.matcher(name.substring(0, name.length() - DurableFiles.TEMP_SUFFIX.length())).matches();
    }
}

package io.tinyllamaj.data.shards;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Files appear whole or not at all: written under a temporary name, flushed to disk, then
 * renamed, and the directory flushed so the rename itself survives a crash. A reader never
 * sees a half-written shard or manifest under its final name.
 */
public final class AtomicFiles {
    public static final String TEMP_SUFFIX = ".tmp";

    private AtomicFiles() {
    }

    public static Path tempFor(Path target) {
        return target.resolveSibling(target.getFileName() + TEMP_SUFFIX);
    }

    public static void write(Path target, byte[] content) throws IOException {
        Path temp = tempFor(target);
        try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            channel.write(ByteBuffer.wrap(content));
            channel.force(true);
        }
        publish(temp, target);
    }

    /** Renames a fully written and flushed temporary file to its final name. */
    public static void publish(Path temp, Path target) throws IOException {
        try {
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING);
        }
        syncDirectory(target.toAbsolutePath().getParent());
    }

    private static void syncDirectory(Path directory) {
        // Linux lets a directory be opened for reading and fsynced; elsewhere this is best effort.
        try (FileChannel channel = FileChannel.open(directory, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException ignoredOnPlatformsWithoutDirectorySync) {
            // the rename is still atomic; only its durability across a power cut is weaker
        }
    }
}

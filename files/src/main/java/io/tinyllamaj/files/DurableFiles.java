package io.tinyllamaj.files;

import java.io.IOException;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileSystemException;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Locale;

/**
 * How every module writes a file: shards, manifests and journals, safetensors and config.json,
 * checkpoints, run-directory files. A file is replaced whole or not at all: written to
 * {@code NAME.tmp} in the same directory, flushed to disk, renamed over the old one, and the
 * directory flushed so that the rename survives a power cut; a reader never sees a half-written
 * file under its final name. A failure names the file and the space left on its file system.
 * Every file is opened through one {@link Opener}, which tests replace to make a chosen write
 * fail as a full disk would.
 */
public final class DurableFiles {

    public static final String TEMP_SUFFIX = ".tmp";

    /** Opens a file for writing. */
    @FunctionalInterface
    public interface Opener {
        FileChannel open(Path file, OpenOption... options) throws IOException;
    }

    /** What goes into a file opened by {@link #write(Path, Content)}. */
    @FunctionalInterface
    public interface Content {
        void writeTo(FileChannel out) throws IOException;
    }

    public static final DurableFiles SYSTEM = new DurableFiles(FileChannel::open);

    private final Opener opener;

    public DurableFiles(Opener opener) {
        this.opener = opener;
    }

    /** Creates or truncates {@code file}, writes it and flushes it to disk. */
    public void write(Path file, Content content) throws IOException {
        try (FileChannel out = opener.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            content.writeTo(out);
            out.force(true);
        } catch (IOException e) {
            throw failure(file, e);
        }
    }

    public void write(Path file, byte[] content) throws IOException {
        write(file, out -> writeFully(out, ByteBuffer.wrap(content)));
    }

    /** Replaces {@code target} whole or not at all; a failed write leaves the old file and no temporary one. */
    public void replace(Path target, byte[] content) throws IOException {
        replace(target, out -> writeFully(out, ByteBuffer.wrap(content)));
    }

    /** {@link #replace(Path, byte[])} for content written as a stream (a shard, a safetensors file). */
    public void replace(Path target, Content content) throws IOException {
        Path temp = tempFor(target);
        try {
            write(temp, content);
            move(temp, target);
        } catch (IOException e) {
            try {
                delete(temp);
            } catch (IOException alsoFailed) {
                e.addSuppressed(alsoFailed);
            }
            throw e;
        }
        syncDirectory(target.toAbsolutePath().getParent());
    }

    /** {@code file} opened for appending text; a failed write should be reported through {@link #failure}. */
    public Writer appender(Path file) throws IOException {
        try {
            return Channels.newWriter(opener.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.APPEND), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw failure(file, e);
        }
    }

    /** {@code file} opened for appending bytes; a failed write should be reported through {@link #failure}. */
    public FileChannel binaryAppender(Path file) throws IOException {
        try {
            return opener.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw failure(file, e);
        }
    }

    /** {@link Files#deleteIfExists}, failing in one line that names the file. */
    public static void delete(Path file) throws IOException {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            throw failure("deleting", file, e);
        }
    }

    public static Path tempFor(Path target) {
        return target.resolveSibling(target.getFileName() + TEMP_SUFFIX);
    }

    public static void writeFully(FileChannel out, ByteBuffer bytes) throws IOException {
        while (bytes.hasRemaining()) {
            out.write(bytes);
        }
    }

    /** Renames atomically where the file system can (always within one directory on Linux). */
    public static void move(Path from, Path to) throws IOException {
        try {
            try {
                Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw failure("renaming " + from + " to", to, e);
        }
    }

    /** Makes renames inside {@code directory} durable (a no-op where directories cannot be opened). */
    public static void syncDirectory(Path directory) {
        try (FileChannel channel = FileChannel.open(directory, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // not every file system lets a directory be opened; the rename itself is still atomic
        }
    }

    /** {@link Files#createDirectories}, failing in one line that says what is in the way. */
    public static void createDirectories(Path directory) throws IOException {
        Path existing = nearestExisting(directory);
        if (!Files.isDirectory(existing)) {
            throw new IOException("cannot create directory " + directory + ": " + existing + " is a file");
        }
        try {
            Files.createDirectories(directory);
        } catch (IOException e) {
            throw failure("creating directory", directory, e);
        }
    }

    /**
     * Fails as {@link #createDirectories} would, without creating anything: for output that is
     * written after long work, so that the work is not spent on a folder that cannot take it.
     */
    public static void requireCreatableDirectory(Path directory) throws IOException {
        Path existing = nearestExisting(directory);
        if (!Files.isDirectory(existing)) {
            throw new IOException("cannot create directory " + directory + ": " + existing + " is a file");
        }
        if (!Files.isWritable(existing)) {
            throw new IOException("cannot write to " + directory + ": " + existing + " is not writable");
        }
    }

    /** "writing FILE failed: REASON; N MiB free on STORE", for any failed write. */
    public static IOException failure(Path file, IOException e) {
        return failure("writing", file, e);
    }

    /** "DOING FILE failed: REASON; N MiB free on STORE". */
    public static IOException failure(String doing, Path file, IOException e) {
        return new IOException(doing + " " + file + " failed: " + reason(e) + spaceLeft(file), e);
    }

    private static String reason(IOException e) {
        if (e instanceof FileSystemException f && f.getReason() != null) {
            return f.getReason();
        }
        if (e instanceof AccessDeniedException) {
            return "permission denied";
        }
        if (e instanceof NoSuchFileException) {
            return "its directory does not exist";
        }
        if (e instanceof DirectoryNotEmptyException) {
            return "a directory that is not empty is in the way";
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }

    /** "; 12.3 MiB free on / (sda1)" for the file system holding {@code path}, or "" where it cannot be read. */
    private static String spaceLeft(Path path) {
        try {
            FileStore store = Files.getFileStore(nearestExisting(path));
            return "; " + size(store.getUsableSpace()) + " free on " + store;
        } catch (IOException | RuntimeException e) {
            return "";
        }
    }

    /** {@code path} or its closest ancestor that exists (the root, at worst). */
    private static Path nearestExisting(Path path) {
        Path existing = path.toAbsolutePath();
        while (existing.getParent() != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        return existing;
    }

    static String size(long bytes) {
        if (bytes < 1024) {
            return bytes + " bytes";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double value = bytes;
        int unit = -1;
        while (value >= 1024 && unit < units.length - 1) {
            value /= 1024;
            unit++;
        }
        return String.format(Locale.ROOT, "%.1f %s", value, units[unit]);
    }
}

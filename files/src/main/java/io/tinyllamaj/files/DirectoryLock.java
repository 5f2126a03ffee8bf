package io.tinyllamaj.files;

import java.io.IOException;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * One live process owns a directory it writes (a run directory, a prepare output): it holds an
 * OS lock on {@code <dir>/.lock} from before its first change to the directory until it is done.
 * The operating system drops the lock when the process ends, however it ends, so a crash or a
 * kill -9 leaves nothing stale. The file names the holder (pid and host) for the message a
 * second process gets. It is never deleted: a process could otherwise lock a file that another
 * has just unlinked while a third locks its replacement. The one exception: a process that
 * created the file and then found the directory is not its to write (a foreign directory it
 * refuses) removes it again, so the refusal leaves the directory as it was.
 */
public final class DirectoryLock implements AutoCloseable {

    public static final String FILE = ".lock";
    private static final int HOLDER_MAX_CHARS = 200;

    private final FileChannel channel; // closing it releases the lock
    private final Path file;
    private final boolean created; // this process created the lock file

    private DirectoryLock(FileChannel channel, Path file, boolean created) {
        this.channel = channel;
        this.file = file;
        this.created = created;
    }

    /**
     * Takes the lock, creating the directory if needed, or fails in one line naming the holder:
     * "{@code what} DIR is in use: pid 12 on host h holds DIR/.lock ({@code advice})".
     */
    public static DirectoryLock acquire(Path directory, String what, String advice) throws IOException {
        DurableFiles.createDirectories(directory);
        Path file = directory.resolve(FILE);
        FileChannel channel;
        boolean created = false;
        try {
            try {
                channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                        StandardOpenOption.WRITE);
                created = true;
            } catch (FileAlreadyExistsException exists) {
                channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
            }
        } catch (IOException e) {
            throw DurableFiles.failure("locking", file, e);
        }
        try {
            if (tryLock(channel) == null) {
                throw new IllegalStateException(what + " " + directory + " is in use: " + holder(channel) + " holds " + file
                        + " (" + advice + ")");
            }
            recordHolder(channel, file);
            return new DirectoryLock(channel, file, created);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    private static FileLock tryLock(FileChannel channel) throws IOException {
        try {
            return channel.tryLock();
        } catch (OverlappingFileLockException heldByThisProcess) {
            return null;
        }
    }

    private static String holder(FileChannel channel) throws IOException {
        ByteBuffer bytes = ByteBuffer.allocate(HOLDER_MAX_CHARS);
        channel.read(bytes, 0);
        String line = new String(bytes.array(), 0, bytes.position(), StandardCharsets.UTF_8).lines().findFirst().orElse("")
                .replaceAll("\\p{Cntrl}", "?").strip();
        return line.isEmpty() ? "another process (it has not recorded its pid yet)" : line;
    }

    /** Overwrites in place, then trims: rewriting the same few bytes needs no new disk block on a full disk. */
    private static void recordHolder(FileChannel channel, Path file) throws IOException {
        ByteBuffer line = ByteBuffer.wrap(("pid " + ProcessHandle.current().pid() + " on host " + hostName() + "\n")
                .getBytes(StandardCharsets.UTF_8));
        try {
            long length = line.remaining();
            while (line.hasRemaining()) {
                channel.write(line, line.position());
            }
            channel.truncate(length);
            channel.force(true);
        } catch (IOException e) {
            throw DurableFiles.failure(file, e);
        }
    }

    private static String hostName() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "unknown";
        }
    }

    /**
     * Releases the lock of a directory this process turned out not to own, removing the lock file
     * if this process created it. No one writes into such a directory, so the unlink cannot strand
     * another writer.
     */
    public void closeAndRemoveIfCreated() throws IOException {
        try {
            if (created) {
                Files.deleteIfExists(file);
            }
        } finally {
            channel.close();
        }
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}

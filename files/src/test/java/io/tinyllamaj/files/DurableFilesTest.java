package io.tinyllamaj.files;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DurableFilesTest {

    /** "; 12.3 MiB free on STORE" at the end of every failure. */
    private static final String SPACE_LEFT = "; \\d+(\\.\\d)? (bytes|KiB|MiB|GiB|TiB|PiB|EiB) free on .+";

    @TempDir
    Path dir;

    @Test
    void replaceSwapsInTheWholeFileAndLeavesNoTemporary() throws IOException {
        Path target = dir.resolve("manifest.json");
        Files.writeString(target, "old and longer");
        DurableFiles.SYSTEM.replace(target, "new".getBytes(StandardCharsets.UTF_8));
        assertEquals("new", Files.readString(target));
        DurableFiles.SYSTEM.replace(target, out -> {
            DurableFiles.writeFully(out, ByteBuffer.wrap("stre".getBytes(StandardCharsets.UTF_8)));
            DurableFiles.writeFully(out, ByteBuffer.wrap("amed".getBytes(StandardCharsets.UTF_8)));
        });
        assertEquals("streamed", Files.readString(target));
        assertFalse(Files.exists(DurableFiles.tempFor(target)));
    }

    @Test
    void aFullDiskKeepsTheOldFileRemovesTheTemporaryAndNamesFileAndSpace() throws IOException {
        Path target = dir.resolve("shard-00000.arrow");
        Files.writeString(target, "complete");
        Path temp = DurableFiles.tempFor(target);
        DurableFiles full = new DurableFiles((file, options) -> {
            FileChannel real = FileChannel.open(file, options);
            if (file.equals(temp)) {
                real.write(ByteBuffer.wrap(new byte[] {1, 2, 3}));
                real.close();
                throw new IOException("No space left on device");
            }
            return real;
        });
        IOException e = assertThrows(IOException.class, () -> full.replace(target, new byte[100]));
        assertTrue(e.getMessage().matches(Pattern.quote("writing " + temp + " failed: No space left on device") + SPACE_LEFT),
                e.getMessage());
        assertEquals("complete", Files.readString(target));
        assertFalse(Files.exists(temp), "the temporary is removed at the failure");
    }

    @Test
    void aFailedRenameNamesBothFilesAndRemovesTheTemporary() throws IOException {
        Path target = dir.resolve("config.json");
        Files.createDirectories(target.resolve("in-the-way"));
        Path temp = DurableFiles.tempFor(target);
        IOException e = assertThrows(IOException.class, () -> DurableFiles.SYSTEM.replace(target, new byte[4]));
        assertTrue(e.getMessage().matches(Pattern.quote("renaming " + temp + " to " + target + " failed: ") + "[^;\n]+"
                + SPACE_LEFT), e.getMessage());
        assertFalse(Files.exists(temp));
        assertTrue(Files.isDirectory(target.resolve("in-the-way")));
    }

    @Test
    void aDirectoryWhereAFileIsRefusedInOneLine() throws IOException {
        Path file = dir.resolve("notes.txt");
        Files.writeString(file, "x");
        IOException e = assertThrows(IOException.class, () -> DurableFiles.createDirectories(file.resolve("run")));
        assertEquals("cannot create directory " + file.resolve("run") + ": " + file + " is a file", e.getMessage());
    }

    @Test
    void sizesAreShownInBinaryUnits() {
        assertEquals("1023 bytes", DurableFiles.size(1023));
        assertEquals("1.5 KiB", DurableFiles.size(1536));
        assertEquals("12.3 MiB", DurableFiles.size((long) (12.3 * (1 << 20))));
    }
}

package io.tinyllamaj.data.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.Deflater;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Tokenizer files too large to be one are refused in one line before they fill the heap. */
class TokenizerFilesTest {

    @Test
    void gzipBombIsRefusedAtTheCap(@TempDir Path dir) throws IOException {
        // one byte past the cap of zeros: a few hundred KB on disk
        Path bomb = dir.resolve("bomb.json.gz");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(bomb)) {
            {
                def.setLevel(Deflater.BEST_SPEED);
            }
        }) {
            byte[] zeros = new byte[1 << 20];
            for (int i = 0; i < TokenizerFiles.MAX_BYTES >> 20; i++) {
                out.write(zeros);
            }
            out.write(0);
        }
        assertEquals(bomb + ": more than 256 MiB uncompressed, too large for a tokenizer (Llama 2's is about 2 MB)",
                assertThrows(IllegalArgumentException.class, () -> LlamaTokenizer.load(bomb)).getMessage());
    }
}

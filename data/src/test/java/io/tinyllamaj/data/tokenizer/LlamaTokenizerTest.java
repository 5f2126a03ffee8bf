package io.tinyllamaj.data.tokenizer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Hand-checked ids (Llama 2's SentencePiece), the BOS/EOS flags, loading, and errors. */
class LlamaTokenizerTest {

    private static final LlamaTokenizer LLAMA2 = LlamaTokenizer.llama2();

    @Test
    void encodesKnownStrings() {
        // ▁Hello=15043 ▁world=3186; ","=29892 "!"=29991; a lone ▁=29871 before ▁leading=8236.
        assertArrayEquals(new int[] {1, 15043, 3186}, LLAMA2.encode("Hello world", true, false));
        assertArrayEquals(new int[] {1, 15043, 29892, 3186, 29991}, LLAMA2.encode("Hello, world!", true, false));
        assertArrayEquals(new int[] {1, 29871, 8236}, LLAMA2.encode(" leading", true, false));
        // "<s>" is text: ▁<=529 s=29879 >=29958, never the BOS id.
        assertArrayEquals(new int[] {529, 29879, 29958}, LLAMA2.encode("<s>", false, false));
        // 🦙 is no piece: ▁ then its UTF-8 bytes F0 9F A6 99 as <0xNN> pieces (id = byte + 3).
        assertArrayEquals(new int[] {29871, 0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3}, LLAMA2.encode("🦙", false, false));
    }

    @Test
    void bosAndEosFlags() {
        assertEquals(1, LLAMA2.bosId());
        assertEquals(2, LLAMA2.eosId());
        assertEquals(32000, LLAMA2.vocabSize());
        assertArrayEquals(new int[] {15043, 3186, 2}, LLAMA2.encode("Hello world", false, true));
        assertArrayEquals(new int[] {1, 2}, LLAMA2.encode("", true, true));
        assertArrayEquals(new int[] {}, LLAMA2.encode("", false, false));
    }

    @Test
    void decodeDropsControlPiecesAndTheDummyPrefix() {
        assertEquals("Hello world", LLAMA2.decode(new int[] {1, 15043, 3186, 2}));
        assertEquals(" leading", LLAMA2.decode(new int[] {1, 29871, 8236}));
        assertEquals("🦙", LLAMA2.decode(new int[] {29871, 0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3}));
        assertEquals("", LLAMA2.decode(new int[] {}));
        assertThrows(IllegalArgumentException.class, () -> LLAMA2.decode(new int[] {32000}));
    }

    @Test
    void loadsJsonAndGzippedJsonWithTheSameChecksum(@TempDir Path dir) throws IOException {
        Path gz = dir.resolve("tokenizer.json.gz");
        Path json = dir.resolve("tokenizer.json");
        try (InputStream in = LlamaTokenizer.class.getResourceAsStream("llama2-tokenizer.json.gz")) {
            Files.copy(in, gz);
        }
        try (InputStream in = new GZIPInputStream(Files.newInputStream(gz)); OutputStream out = Files.newOutputStream(json)) {
            in.transferTo(out);
        }
        String checksum = LLAMA2.checksum();
        assertEquals(64, checksum.length());
        assertEquals(checksum, LlamaTokenizer.load(gz).checksum());
        assertEquals(checksum, LlamaTokenizer.load(json).checksum());
        assertArrayEquals(LLAMA2.encode("Hello world", true, true), LlamaTokenizer.load(json).encode("Hello world", true, true));
    }

    @Test
    void badFilesAreNamedInTheError(@TempDir Path dir) throws IOException {
        Path missing = dir.resolve("missing.json");
        assertMessageNames(missing, assertThrows(IOException.class, () -> LlamaTokenizer.load(missing)));

        Path brokenJson = Files.writeString(dir.resolve("broken.json"), "{\"model\": [1, 2");
        assertMessageNames(brokenJson, assertThrows(IOException.class, () -> LlamaTokenizer.load(brokenJson)));

        Path notBpe = Files.writeString(dir.resolve("wordpiece.json"), "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
        assertMessageNames(notBpe, assertThrows(IllegalArgumentException.class, () -> LlamaTokenizer.load(notBpe)));

        Path truncated = Files.write(dir.resolve("truncated.model"), new byte[] {0x0A, 0x7F, 0x0A});
        assertMessageNames(truncated, assertThrows(IllegalArgumentException.class, () -> LlamaTokenizer.load(truncated)));
    }

    private static void assertMessageNames(Path file, Exception error) {
        assertTrue(error.getMessage().contains(file.toString()), () -> "message does not name " + file + ": " + error.getMessage());
    }
}

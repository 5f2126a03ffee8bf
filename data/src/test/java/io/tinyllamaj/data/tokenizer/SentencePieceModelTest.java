package io.tinyllamaj.data.tokenizer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A tiny hand-written ModelProto: SentencePiece's score-ordered BPE, its tie-break, and its options. */
class SentencePieceModelTest {

    /**
     * Pieces: 0 unk, 1 s, 2 /s, 3 ▁, 4 a, 5 b, 6 c, 7 ab (-1), 8 bc (-1), 9 ▁a (-2), 10 abc (-3),
     * 11 <0x41>. "ab" and "bc" score the same, so in "abc" the leftmost pair wins: ab, then abc.
     */
    private static ModelProtoWriter tinyModel(boolean removeExtraWhitespaces) {
        return new ModelProtoWriter()
                .piece("<unk>", 0, 2).piece("<s>", 0, 3).piece("</s>", 0, 3)
                .piece("\u2581", -10, 1).piece("a", -10, 1).piece("b", -10, 1).piece("c", -10, 1)
                .piece("ab", -1, 1).piece("bc", -1, 1).piece("\u2581a", -2, 1).piece("abc", -3, 1)
                .piece("<0x41>", 0, 6)
                .message(2, new ModelProtoWriter().varint(3, 2).varint(35, 1))
                .message(3, new ModelProtoWriter().string(1, "identity").varint(4, removeExtraWhitespaces ? 1 : 0));
    }

    private static LlamaTokenizer load(Path dir, ModelProtoWriter model) throws IOException {
        return LlamaTokenizer.load(Files.write(dir.resolve("tiny.model"), model.toByteArray()));
    }

    @Test
    void mergesByScoreLeftmostFirst(@TempDir Path dir) throws IOException {
        LlamaTokenizer tokenizer = load(dir, tinyModel(false));
        assertEquals(12, tokenizer.vocabSize());
        // ▁ a b c: ab and bc (-1) beat ▁a (-2); leftmost ab first, then abc (-3): ▁ abc.
        assertArrayEquals(new int[] {1, 3, 10, 2}, tokenizer.encode("abc", true, true));
        // ▁ a c: only ▁a applies.
        assertArrayEquals(new int[] {9, 6}, tokenizer.encode("ac", false, false));
        // "A" is no piece: byte fallback to <0x41>; other bytes have no piece, so unk.
        assertArrayEquals(new int[] {3, 11, 0}, tokenizer.encode("A\u0001", false, false));
        assertEquals("abc", tokenizer.decode(new int[] {1, 3, 10, 2}));
    }

    @Test
    void removesExtraWhitespacesWhenTheModelSaysSo(@TempDir Path dir) throws IOException {
        // "  a" is ▁▁▁a as it stands; trimmed and collapsed, "  a   a " is ▁a▁a.
        assertArrayEquals(new int[] {3, 3, 9}, load(dir, tinyModel(false)).encode("  a", false, false));
        assertArrayEquals(new int[] {9, 9}, load(dir, tinyModel(true)).encode("  a   a ", false, false));
    }

    @Test
    void rejectsWhatItCannotEncodeFaithfully(@TempDir Path dir) {
        ModelProtoWriter unigram = new ModelProtoWriter().piece("<unk>", 0, 2).piece("<s>", 0, 3).piece("</s>", 0, 3)
                .message(2, new ModelProtoWriter().varint(3, 1));
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class, () -> load(dir, unigram));
        assertTrue(error.getMessage().contains("not BPE"), error.getMessage());

        ModelProtoWriter nfkc = tinyModel(false).message(3, new ModelProtoWriter().string(1, "nmt_nfkc"));
        error = assertThrows(IllegalArgumentException.class, () -> load(dir, nfkc));
        assertTrue(error.getMessage().contains("tiny.model") && error.getMessage().contains("nmt_nfkc"), error.getMessage());
    }

    private static String refusal(Path file) {
        return assertTimeoutPreemptively(Duration.ofSeconds(5),
                () -> assertThrows(IllegalArgumentException.class, () -> LlamaTokenizer.load(file)).getMessage());
    }

    @Test
    void negativeOrOverlongLengthsAreRefusedNamingTheFile(@TempDir Path dir) throws IOException {
        // field 4, length-delimited, length varint 0xFF x9 0x01 = -1: skipping it used to step backwards forever
        Path loop = Files.write(dir.resolve("loop.model"), new byte[] {0x22, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0x01});
        assertEquals(loop + ": malformed SentencePiece model (field 4 claims -1 bytes, 0 left)", refusal(loop));

        // a piece's text (field 1 inside field 1) claiming -2 bytes: used to be StringIndexOutOfBounds
        byte[] negativeText = {0x0A, 0x0B, 0x0A, -2, -1, -1, -1, -1, -1, -1, -1, -1, 0x01};
        Path text = Files.write(dir.resolve("text.model"), negativeText);
        assertEquals(text + ": malformed SentencePiece model (field 1 claims -2 bytes, 0 left)", refusal(text));

        // a nested message claiming a length of 2^31 (beyond an int) with one byte left
        Path overlong = Files.write(dir.resolve("overlong.model"), new byte[] {0x12, -128, -128, -128, -128, 0x08, 0x00});
        assertEquals(overlong + ": malformed SentencePiece model (field 2 claims 2147483648 bytes, 1 left)",
                refusal(overlong));

        Path empty = Files.write(dir.resolve("empty.model"), new ModelProtoWriter().piece("", 0, 1).toByteArray());
        assertEquals(empty + ": malformed SentencePiece model (a piece without text)", refusal(empty));
    }

    /** Damaged copies of a valid model: each either loads or is refused in one line naming the file, never anything else. */
    @Test
    void damagedModelsAreRefusedNamingTheFileOrStillLoad(@TempDir Path dir) throws IOException {
        byte[] valid = tinyModel(false).toByteArray();
        Random random = new Random(42);
        Path file = dir.resolve("damaged.model");
        assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
            for (int trial = 0; trial < 2000; trial++) {
                byte[] damaged = valid.clone();
                for (int flips = 1 + random.nextInt(3); flips > 0; flips--) {
                    damaged[random.nextInt(damaged.length)] = (byte) random.nextInt(256);
                }
                Files.write(file, damaged);
                try {
                    LlamaTokenizer.load(file);
                } catch (IllegalArgumentException | IOException e) { // IOException too: a first byte of '{' makes it JSON
                    assertTrue(e.getMessage().startsWith(file + ": ") && !e.getMessage().contains("\n"), e.getMessage());
                }
            }
        });
    }
}

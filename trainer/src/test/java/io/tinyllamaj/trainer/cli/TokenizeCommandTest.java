package io.tinyllamaj.trainer.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** tokenize through the CLI: bad input files are one line naming the file (and line), exit 1. */
class TokenizeCommandTest {

    @TempDir
    Path temp;

    private static CliRun tokenize(String... args) {
        String[] all = new String[args.length + 3];
        all[0] = "tokenize";
        all[1] = "--tokenizer";
        System.arraycopy(args, 0, all, 2, args.length);
        all[all.length - 1] = "--no-bos";
        return CliRun.of(all);
    }

    @Test
    void invalidUtf8IsNamedWithItsLine() throws Exception {
        Path file = temp.resolve("bad.jsonl");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        bytes.writeBytes("{\"text\":\"Hello world\"}\n".getBytes(StandardCharsets.UTF_8));
        bytes.writeBytes(new byte[] {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xFF, '"', '}', '\n'});
        Files.write(file, bytes.toByteArray());
        CliRun run = tokenize("llama2", "--input", file.toString());
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + file + ":2: not valid UTF-8\n", run.err());
        assertEquals("{\"ids\": [15043, 3186]}\n", run.out(), "the good line before it, and nothing for the bad one");
    }

    @Test
    void loneSurrogateEscapeIsInvalidUtf8NotU_FFFD() throws Exception {
        Path file = temp.resolve("surrogate.jsonl");
        Files.writeString(file, "{\"text\":\"a \\ud800 b\"}\n");
        CliRun run = tokenize("llama2", "--input", file.toString());
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + file + ":1: not valid UTF-8 (lone surrogate \\ud800 from a JSON escape at"
                + " character 2)\n", run.err());
        assertEquals("", run.out());
    }

    @Test
    void compressedAndParquetFilesAreNamedAsSuch() throws Exception {
        Path zst = temp.resolve("part.jsonl.zst");
        Files.write(zst, new byte[] {0x28, (byte) 0xB5, 0x2F, (byte) 0xFD, 0x00, 0x58, (byte) 0x99});
        CliRun run = tokenize("llama2", "--input", zst.toString());
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + zst + ": zstd-compressed data, not JSON Lines (decompress it first: zstd -d)\n",
                run.err());

        Path parquet = temp.resolve("data.parquet");
        Files.write(parquet, new byte[] {'P', 'A', 'R', '1', 0x15, 0x04, (byte) 0xFE});
        run = tokenize("llama2", "--input", parquet.toString());
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + parquet + ": a parquet file, not JSON Lines (--input reads one {\"text\": ...}"
                + " object per line)\n", run.err());
        assertEquals("", run.out());
    }

    @Test
    void sentencePieceModelWithANegativeLengthIsRefusedNotLoopedOn() throws Exception {
        // field 4, length-delimited, length -1 (0xFF x9 0x01): skipping it used to step backwards forever
        Path model = temp.resolve("loop.model");
        Files.write(model, new byte[] {0x22, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0x01});
        CliRun run = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> tokenize(model.toString(), "--text", "a"));
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + model + ": malformed SentencePiece model (field 4 claims -1 bytes, 0 left)\n",
                run.err());
    }
}

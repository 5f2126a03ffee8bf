package io.tinyllamaj.trainer.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** prepare through the CLI: refusals are one line and a non-zero exit, and change nothing. */
class PrepareCommandTest {

    @TempDir
    Path temp;

    private Path corpus(String lines) throws Exception {
        Path file = temp.resolve("corpus.jsonl");
        Files.writeString(file, lines);
        return file;
    }

    private static CliRun prepare(Path input, Path out) {
        return CliRun.of("prepare", "--source", "jsonl", "--input", input.toString(), "--tokenizer", "llama2",
                "--out", out.toString(), "--workers", "1");
    }

    @Test
    void directoryHoldingOtherFilesIsRefusedInOneLineAndLeftAsItIs() throws Exception {
        Path input = corpus("{\"text\":\"a document\"}\n");
        Path out = temp.resolve("out");
        Files.createDirectories(out);
        byte[] foreign = {1, 2, 3};
        Files.write(out.resolve("shard-00000.arrow"), foreign);

        CliRun run = prepare(input, out);
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + out + ": holds files prepare did not write (shard-00000.arrow); it writes"
                + " only into a new or empty directory or one holding its own run; choose another output directory\n",
                run.err());
        assertArrayEquals(foreign, Files.readAllBytes(out.resolve("shard-00000.arrow")));
        try (var files = Files.list(out)) {
            assertEquals(1, files.count());
        }
    }

    @Test
    void corpusWithoutAUsableDocumentExitsNonZeroAndWritesNoManifest() throws Exception {
        Path input = corpus("{\"title\":\"no text\"}\n");
        Path out = temp.resolve("out");
        CliRun run = prepare(input, out);
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: no usable documents in 1 input file (1 unusable records (1 missing text field));"
                + " first: " + input + ":1: missing text field (no string field \"text\")\n", run.err());
        assertTrue(Files.notExists(out), "no empty manifest, no directory");

        Files.writeString(input, "{\"text\":\"a document\"}\n");
        CliRun fixed = prepare(input, out);
        assertEquals(0, fixed.exitCode(), fixed.err());
        assertTrue(fixed.out().contains("prepare: 1 documents"), fixed.out());
    }

    @Test
    void workerCountBeyondTheBoundIsRefusedInOneLine() throws Exception {
        Path input = corpus("{\"text\":\"a document\"}\n");
        Path out = temp.resolve("out");
        CliRun run = CliRun.of("prepare", "--source", "jsonl", "--input", input.toString(), "--tokenizer", "llama2",
                "--out", out.toString(), "--workers", "2000000000");
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: --workers must be at most 4096, got 2000000000\n", run.err());
        assertTrue(Files.notExists(out));
    }

    @Test
    void invalidGlobIsRefusedInOneLine() throws Exception {
        corpus("{\"text\":\"a document\"}\n");
        String glob = temp + "/[.jsonl";
        Path out = temp.resolve("out");
        CliRun run = CliRun.of("prepare", "--source", "jsonl", "--input", glob, "--tokenizer", "llama2",
                "--out", out.toString(), "--workers", "1");
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: --input '" + glob + "' is not a valid glob (Missing ])\n", run.err());
        assertTrue(Files.notExists(out));
    }
}

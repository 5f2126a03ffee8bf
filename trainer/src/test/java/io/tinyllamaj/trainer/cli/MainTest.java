package io.tinyllamaj.trainer.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What the root command prints when the command line itself is wrong, and how failures read. */
class MainTest {

    private static final String RECIPE = io.tinyllamaj.trainer.data.ProjectPaths.projectHome().orElseThrow()
            .resolve("configs/tinyllama-1.1b-3t.yaml").toString();

    @TempDir
    Path temp;

    @Test
    void aMistypedCommandOrOptionGetsOneLineWithTheNearestNames() {
        CliRun command = CliRun.of("pretrian");
        assertEquals(2, command.exitCode());
        assertEquals(List.of("tinyllama: error: Unmatched argument at index 0: 'pretrian'; did you mean pretrain or prepare or plan? "
                + "(see tinyllama --help)"), command.err().lines().toList());
        CliRun option = CliRun.of("generate", "--checkpoint", "x", "--prompt-tokens", "1", "--seed", "abc");
        assertEquals(2, option.exitCode());
        assertEquals(List.of("tinyllama: error: Invalid value for option '--seed': 'abc' is not a long (see tinyllama generate --help)"),
                option.err().lines().toList());
    }

    @Test
    void anEmptyPathIsRefusedRatherThanTakenAsTheWorkingDirectory() {
        // `--out ""` was Path.of(""): export wrote config.json and the weights into the working directory
        CliRun run = CliRun.of("export", "--checkpoint", temp.toString(), "--out", "");
        assertEquals(2, run.exitCode());
        assertEquals(List.of("tinyllama: error: Invalid value for option '--out': an empty path (see tinyllama export --help)"),
                run.err().lines().toList());
    }

    @Test
    void controlCharactersFromAFilesTextCannotBreakTheLineOrDriveTheTerminal() {
        assertEquals("tokenizer.json: piece \"a\\u001b[2Jb\\u0000\" at line 2",
                io.tinyllamaj.trainer.FailureMessages.describe(new java.io.IOException("tokenizer.json: piece \"a\u001b[2Jb\u0000\" at line 2")));
        assertEquals("a b c", io.tinyllamaj.trainer.FailureMessages.describe(new IllegalArgumentException("a\nb\tc")));
    }

    @Test
    void aNumberWithALeadingZeroIsRefusedNotReadAsOctal() {
        CliRun run = CliRun.of("plan", "--set", "train.seed=0042");
        assertEquals(1, run.exitCode());
        assertEquals(List.of("tinyllama: error: --set train.seed: 0042 has a leading zero, which YAML 1.1 reads as the octal 34; "
                + "write the number without it (line 1)"), run.err().lines().toList());
    }

    @Test
    void planGivenAGpuCountPlansTheRunOnThatManyRanks() {
        CliRun eight = CliRun.of("plan", "--config", RECIPE, "--gpus", "8");
        assertEquals(0, eight.exitCode(), eight.err());
        // the recipe's 16 ranks x 8 accumulation become 8 x 16: the per-micro-batch warm-up takes twice the iterations
        assertTrue(eight.out().contains("micro-batch 8 x 16 accumulation x 8 ranks"), eight.out());
        CliRun three = CliRun.of("plan", "--config", RECIPE, "--gpus", "3");
        assertEquals(1, three.exitCode());
        assertTrue(three.err().contains("is not divisible by train.micro_batch_size x distributed.world_size = 8 x 3"), three.err());
    }

    @Test
    void anExportIntoARunsCheckpointsFolderIsRefused() throws Exception {
        Path run = java.nio.file.Files.createDirectories(temp.resolve("run/checkpoints/step-00000006"));
        java.nio.file.Files.writeString(temp.resolve("run/config.yaml"), "model: {preset: demo-9m}\n");
        CliRun export = CliRun.of("export", "--checkpoint", temp.resolve("run").toString(), "--out", run.toString());
        assertEquals(1, export.exitCode());
        assertEquals(List.of("tinyllama: error: --out " + run + " lies in the run's " + temp.resolve("run/checkpoints")
                + ", whose old checkpoints are deleted by retention (the export with them); choose a folder outside it"),
                export.err().lines().toList());
    }

    @Test
    void aTrailingCommaInATokenListIsRefused() {
        CliRun run = CliRun.of("score", "--checkpoint", temp.toString(), "--tokens", "1,2,");
        assertEquals(1, run.exitCode());
        assertEquals(List.of("tinyllama: error: --tokens: '' at position 2 is not a token id (expected comma-separated integers)"),
                run.err().lines().toList());
    }

    @Test
    void fileErrorsThatNameOnlyTheFileGetTheirReason() {
        assertEquals("/data/x.jsonl: permission denied", io.tinyllamaj.trainer.FailureMessages.describe(new AccessDeniedException("/data/x.jsonl")));
        assertEquals("/data/y: no such file or directory",
                io.tinyllamaj.trainer.FailureMessages.describe(new UncheckedIOException(new NoSuchFileException("/data/y"))));
        assertEquals("creating /data failed: disk full", io.tinyllamaj.trainer.FailureMessages.describe(new UncheckedIOException(
                new java.io.IOException("creating /data failed: disk full"))));
    }
}

package io.tinyllamaj.trainer.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** What the root command prints when the command line itself is wrong, and how failures read. */
class MainTest {

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
                Main.describe(new java.io.IOException("tokenizer.json: piece \"a\u001b[2Jb\u0000\" at line 2")));
        assertEquals("a b c", Main.describe(new IllegalArgumentException("a\nb\tc")));
    }

    @Test
    void fileErrorsThatNameOnlyTheFileGetTheirReason() {
        assertEquals("/data/x.jsonl: permission denied", Main.describe(new AccessDeniedException("/data/x.jsonl")));
        assertEquals("/data/y: no such file or directory",
                Main.describe(new UncheckedIOException(new NoSuchFileException("/data/y"))));
        assertEquals("creating /data failed: disk full", Main.describe(new UncheckedIOException(
                new java.io.IOException("creating /data failed: disk full"))));
    }
}

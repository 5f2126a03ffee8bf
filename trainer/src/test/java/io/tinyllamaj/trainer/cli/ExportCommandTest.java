package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.model.Checkpoints;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ReferenceLlama;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

class ExportCommandTest {

    @TempDir
    Path temp;

    @Test
    void aHuggingFaceDirectoryIsNamedAsSuchAndLeftAlone() throws Exception {
        Path hf = Checkpoints.write(new ReferenceLlama(LlamaConfig.preset("test-tiny"), 1), temp.resolve("hf"));
        CliRun run = CliRun.of("export", "--checkpoint", hf.toString(), "--out", temp.resolve("out").toString());
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + hf + " is a Hugging Face checkpoint directory (config.json and weights), not a "
                + "training checkpoint: export takes a run directory or one of its checkpoints (<run>/checkpoints/step-N); "
                + "score, generate and pretrain --init-from read " + hf + " as it is", run.err().strip());
        assertFalse(Files.exists(temp.resolve("out")));
    }
}

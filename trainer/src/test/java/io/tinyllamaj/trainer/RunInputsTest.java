package io.tinyllamaj.trainer;

import io.tinyllamaj.model.Checkpoints;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ReferenceLlama;
import io.tinyllamaj.trainer.run.PretrainRun;
import io.tinyllamaj.trainer.run.StopSignal;
import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** What a run refuses to start from: inputs that would train on other data or another model than the recipe says. */
class RunInputsTest {

    @TempDir
    Path dir;

    @Test
    void twoSourcesOnOneFolderAreRefusedRatherThanTrainedTwice() throws Exception {
        Path recipe = TestRuns.writeRecipe(dir, "test-tiny", 61, 16, 2, 4, 4, "");
        Path link = Files.createSymbolicLink(dir.resolve("prose-link"), dir.resolve("prose"));
        for (String path : List.of(dir.resolve("prose").toString(), link.toString())) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> TestRuns.pretrain(recipe, dir.resolve("run"), null, "data.sources.1.path=" + path));
            assertEquals("data sources prose and code both read " + dir.resolve("prose").toRealPath()
                    + ": one source's data would be trained on twice", e.getMessage());
        }
        assertFalse(Files.exists(dir.resolve("run/metrics.jsonl")));
    }

    @Test
    void aTokenizerOtherThanTheShardsWasPreparedWithIsRefused() throws Exception {
        Path jsonl = Files.writeString(dir.resolve("docs.jsonl"), "{\"text\": \"Once upon a time there was a test.\"}\n".repeat(40));
        Path prepared = dir.resolve("prepared");
        var prepare = io.tinyllamaj.trainer.cli.CliRun.of("prepare", "--source", "jsonl", "--input", jsonl.toString(),
                "--tokenizer", "llama2", "--out", prepared.toString());
        assertEquals(0, prepare.exitCode(), prepare.err());
        Path recipe = TestRuns.writeRecipe(dir, "demo-9m", 32000, 16, 2, 4, 2, "");
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, dir.resolve("run-same"), null,
                "data.sources.0.path=" + prepared));
        // the shards say another tokenizer made them: eval tasks and missing sources would be tokenized otherwise
        Path manifest = prepared.resolve("manifest.json");
        String text = Files.readString(manifest);
        String recorded = new com.fasterxml.jackson.databind.ObjectMapper().readTree(text).get("tokenizer").asText();
        Files.writeString(manifest, text.replace(recorded, "0".repeat(recorded.length())));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TestRuns.pretrain(recipe,
                dir.resolve("run-other"), null, "data.sources.0.path=" + prepared));
        assertEquals("data.tokenizer llama2 is not the tokenizer " + prepared + " was prepared with (its manifest records checksum "
                + "0".repeat(recorded.length()) + ", data.tokenizer's is " + recorded + ")", e.getMessage());
    }

    @Test
    void initFromADirectoryWhoseConfigDescribesAnotherModelIsRefused() throws Exception {
        Path recipe = TestRuns.writeRecipe(dir, "test-tiny", 61, 16, 2, 4, 4, "");
        LlamaConfig tiny = LlamaConfig.preset("test-tiny");
        // the same tensor shapes, another RoPE base: its weights would load, and train another model
        LlamaConfig otherTheta = new LlamaConfig("x", tiny.vocabSize(), tiny.dim(), tiny.layers(), tiny.heads(), tiny.kvHeads(),
                tiny.intermediate(), tiny.normEps(), 500f, tiny.maxSeqLen(), tiny.tieEmbeddings());
        Path hf = Checkpoints.write(new ReferenceLlama(otherTheta, 5), dir.resolve("hf"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new PretrainRun(recipe, List.of(),
                dir.resolve("run"), null, hf).execute(StopSignal.none(), Trainer.Hooks.NONE, new PrintStream(new ByteArrayOutputStream())));
        assertEquals("--init-from " + hf + ": its config.json describes another model than the recipe's (rope_theta 500.0 there, "
                + tiny.ropeTheta() + " in the recipe)", e.getMessage());

        Path same = Checkpoints.write(new ReferenceLlama(tiny, 5), dir.resolve("hf-same"));
        assertEquals(Trainer.Outcome.FINISHED, new PretrainRun(recipe, List.of(), dir.resolve("run-same"), null, same)
                .execute(StopSignal.none(), Trainer.Hooks.NONE, new PrintStream(new ByteArrayOutputStream())));
    }
}

package io.tinyllamaj.trainer;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ModelMemory;
import io.tinyllamaj.trainer.plan.Sharding;
import io.tinyllamaj.trainer.run.MetricsLog;
import io.tinyllamaj.trainer.run.RankMemory;
import io.tinyllamaj.trainer.run.StopSignal;
import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The memory account of a one-rank CPU run of test-tiny (vocab 61, dim 16, 2 layers, 4 heads of
 * 4, 2 KV heads, intermediate 24) at micro-batch 2 x 8 tokens, two micro-batches an optimizer step (a
 * global batch of 4), against bytes worked out by hand.
 */
class MemoryAccountTest {

    /** embed and lm_head 61 x 16 each; a block: 2 norms of 16, qkv 32 x 16, attn_out 16 x 16, gate_up 48 x 16, down 16 x 24; final norm 16. */
    static final long PARAMETERS = 2 * 61 * 16 + 2 * (16 + 32 * 16 + 16 * 16 + 16 + 48 * 16 + 16 * 24) + 16;

    /**
     * n = 16 rows. fp32 values: per block two residuals (16 x 16), two rstd rows (16) and lse (16 x 4 heads); the
     * last residual, the final rstd, the loss rows of the step's two micro-batches (16 each), the residual gradient. Activation values: per block two norm
     * outputs and the attention output (16 x 16), qkv (16 x 32), gate|up (16 x 48); SwiGLU (16 x 24), the final
     * norm, the logits (16 x 61), the scratch, and the gradients dResidual's copy, dNorm, dAttn (16 x 16), dQkv
     * (16 x 32), dGateUp (16 x 48), dSwiglu (16 x 24). All fp32 on the CPU: 4 bytes each.
     */
    static final long ACTIVATION_BYTES = 4 * (2 * (256 + 256 + 16 + 16 + 64) + 256 + 16 + 2 * 16 + 256
            + 2 * (256 + 256 + 256 + 512 + 768) + 384 + 256 + 16 * 61 + 256 + 256 + 256 + 256 + 512 + 768 + 384);

    @TempDir
    Path dir;

    @Test
    void oneCpuRankRecordsEveryCategoryAfterItsFirstStep() throws Exception {
        Path recipe = TestRuns.writeRecipe(dir, "test-tiny", 61, 8, 2, 4, 2, "");
        Path run = dir.resolve("run");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, null, StopSignal.none(), Trainer.Hooks.NONE, log));

        List<JsonNode> records = MetricsLog.readMemory(run.resolve(MetricsLog.FILE));
        assertEquals(1, records.size(), "one rank, one record: " + records);
        assertEquals(0, records.getFirst().path("rank").asInt());
        assertEquals(1, records.getFirst().path("step").asLong(), "written after the first step, when the activations exist");
        long params = PARAMETERS * 4;
        RankMemory expected = new RankMemory(params, 0, params, 2 * params, 0, ACTIVATION_BYTES, 0, 1);
        assertEquals(expected, RankMemory.fromRecord(records.getFirst()));
        assertEquals(4 * params + ACTIVATION_BYTES, records.getFirst().path("memory").path("total").asLong());
        assertEquals(expected, Sharding.replicated("none").memory(LlamaConfig.preset("test-tiny"), 2, 8, 2, ModelMemory.Storage.CPU, 0),
                "the cluster planner's account of the same shape is the measured one");

        // 5,872 parameters: 23,488 bytes; AdamW's m and v 46,976; activations 40,704; total 134,656
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("memory per rank: parameters 23.5 kB, operands 0, gradients 23.5 kB, "
                + "optimizer 47.0 kB (shard 1/1), gathered blocks 0, activations 40.7 kB, workspace 0; total 135 kB\n"), log.toString());
        List<JsonNode> steps = MetricsLog.read(run.resolve(MetricsLog.FILE));
        assertEquals(List.of(1L, 2L), steps.stream().map(r -> r.path("step").asLong()).toList(), "step records alone");
        assertTrue(steps.stream().allMatch(r -> r.has("loss")));
    }
}

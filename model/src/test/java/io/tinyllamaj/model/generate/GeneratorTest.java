package io.tinyllamaj.model.generate;

import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.Checkpoints;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.ReferenceLlama;
import io.tinyllamaj.model.hf.HfCheckpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Generation and sampling settings at their limits. */
class GeneratorTest {

    @TempDir
    Path temp;

    private LlamaModel testSmall() throws IOException {
        return HfCheckpoint.load(Checkpoints.write(new ReferenceLlama(LlamaConfig.preset("test-small"), 4), temp.resolve("hf")),
                new CpuBackend());
    }

    private static int[] greedy(LlamaModel model, int[] prompt, int maxNewTokens) {
        return new Generator(model).generate(prompt, maxNewTokens, new Sampler(0, 0, 1, 0), -1, token -> {
        });
    }

    @Test
    void moreNewTokensThanTheContextHoldsStopAtTheContext() throws IOException {
        LlamaModel model = testSmall(); // max_seq_len 64: a 3-token prompt leaves room for 61
        int[] prompt = {1, 5, 9};
        int[] expected = greedy(model, prompt, 61);
        assertEquals(61, expected.length);
        for (int asked : new int[]{62, 2_147_483_640, Integer.MAX_VALUE}) {
            assertEquals(java.util.Arrays.toString(expected), java.util.Arrays.toString(greedy(model, prompt, asked)), "asked " + asked);
        }
        assertEquals(61, new Generator(model).room(prompt.length));
    }

    @Test
    void weightsThatAreNotFiniteStopGenerationInsteadOfRepeatingAnId() throws IOException {
        LlamaModel model = testSmall();
        float[] embed = model.backend().download(model.parameter("embed"));
        embed[5 * model.config().dim()] = Float.NaN; // token 5's row: a forward that reads it gives NaN logits
        model.backend().upload(model.parameter("embed"), embed, 0, embed.length);
        assertEquals(1, greedy(model, new int[]{1, 2}, 1).length, "a prompt that does not read the row generates");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> greedy(model, new int[]{1, 5}, 3));
        assertTrue(e.getMessage().startsWith("the logits after 2 tokens hold NaN (id 0): the checkpoint's weights are not finite"),
                e.getMessage());
    }

    @Test
    void aKvCacheLargerThanMemoryIsRefusedBeforeItIsAllocated() throws IOException {
        // test-small's shape with a context of 2^31 - 1: 3 prompt + 20,000,000 new - 1 (the last is never fed back)
        // = 20,000,002 cached positions x 96 (q, k, v) x 2 blocks x 4 bytes = 15,360,001,536 bytes, 14.3 GiB,
        // beyond the tests' 6 GiB heap
        LlamaConfig longContext = new LlamaConfig("long", 256, 64, 2, 8, 2, 160, 1e-5f, 1e4f, Integer.MAX_VALUE, false);
        LlamaModel model = HfCheckpoint.load(Checkpoints.write(new ReferenceLlama(longContext, 4), temp.resolve("long")), new CpuBackend());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> greedy(model, new int[]{1, 5, 9}, 20_000_000));
        assertTrue(e.getMessage().startsWith("a KV cache of 20,000,002 tokens needs 14.3 GiB, and the cpu backend holds at most "),
                e.getMessage());
    }

    @Test
    void countsThatMakeNoSenseAreRefused() throws IOException {
        LlamaModel model = testSmall();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> greedy(model, new int[]{1}, 0));
        assertEquals("the number of new tokens must be positive, got 0", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> greedy(model, new int[64], 1));
        assertEquals("the prompt (64 tokens) leaves no room in the model's context of 64", e.getMessage());
    }

    @Test
    void samplingSettingsOutsideTheirRangeAreRefusedByName() {
        assertEquals("temperature must be a finite number >= 0 (0: greedy), got NaN",
                assertThrows(IllegalArgumentException.class, () -> new Sampler(Float.NaN, 0, 1, 0)).getMessage());
        assertEquals("temperature must be a finite number >= 0 (0: greedy), got Infinity",
                assertThrows(IllegalArgumentException.class, () -> new Sampler(Float.POSITIVE_INFINITY, 0, 1, 0)).getMessage());
        assertEquals("top-k must be >= 0 (0: all tokens), got -1",
                assertThrows(IllegalArgumentException.class, () -> new Sampler(1, -1, 1, 0)).getMessage());
        assertEquals("top-p must be in (0, 1], got NaN",
                assertThrows(IllegalArgumentException.class, () -> new Sampler(1, 0, Float.NaN, 0)).getMessage());
        assertEquals("top-p must be in (0, 1], got 0.0",
                assertThrows(IllegalArgumentException.class, () -> new Sampler(1, 0, 0f, 0)).getMessage());
    }

    @Test
    void aSamplerLimitedToTheFirstIdsNeverReturnsAnother() {
        // ids 2 and 3 (a padded vocabulary's extra rows) have by far the largest logits
        float[] logits = {0f, 1f, 9f, 8f};
        assertEquals(1, new Sampler(0, 0, 1, 0).limitedTo(2).sample(logits));
        Sampler sampler = new Sampler(1f, 0, 1f, 7).limitedTo(2);
        int[] seen = new int[4];
        for (int i = 0; i < 400; i++) {
            seen[sampler.sample(logits)]++;
        }
        assertEquals(0, seen[2] + seen[3]);
        // p(1) = e / (1 + e) = 0.73 of 400 draws
        assertTrue(seen[1] > 240 && seen[1] < 340, "id 1 drawn " + seen[1] + " times");
        assertEquals("a sampler must allow at least one token id, got 0",
                assertThrows(IllegalArgumentException.class, () -> new Sampler(1, 0, 1, 0).limitedTo(0)).getMessage());
    }
}

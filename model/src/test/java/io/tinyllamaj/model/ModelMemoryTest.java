package io.tinyllamaj.model;

import io.tinyllamaj.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The model's memory account on the CPU against sizes worked out by hand from test-tiny's shape
 * (vocab 61, dim 16, 2 layers, 4 heads of 4, 2 KV heads, intermediate 24), and the planned
 * account ({@link ModelMemory#planned}) against the same numbers.
 */
class ModelMemoryTest {

    private static final LlamaConfig TINY = LlamaConfig.preset("test-tiny");

    /** embed 61 x 16; a block: 2 norms of 16, qkv (4 + 2 x 2) x 4 = 32 rows x 16, attn_out 16 x 16, gate_up 48 x 16, down 16 x 24; final norm 16; lm_head 61 x 16. */
    private static final long PARAMETERS = 61 * 16 + 2 * (16 + 32 * 16 + 16 * 16 + 16 + 48 * 16 + 16 * 24) + 16 + 61 * 16;

    /**
     * b = 2, t = 8: n = 16 rows. Kept in fp32: per block the residual input, the mid-block residual
     * (16 x 16 each), two rstd rows (16 each) and lse (16 rows x 4 heads); then the last residual,
     * the final rstd, the losses and the residual gradient.
     */
    private static final long FP32_VALUES = 2 * (256 + 256 + 16 + 16 + 64) + 256 + 16 + 16 + 256;

    /**
     * Activations: per block the two norm outputs and the attention output (16 x 16 each), qkv
     * (16 x 32) and gate|up (16 x 48); then the SwiGLU output (16 x 24), the final norm, the logits
     * (16 rows x 61: one chunk), the sub-layer scratch, and the gradient scratch: the residual
     * gradient's copy, dNorm, dAttn (16 x 16 each), dQkv (16 x 32), dGateUp (16 x 48), dSwiglu (16 x 24).
     */
    private static final long ACTIVATION_VALUES = 2 * (256 + 256 + 256 + 512 + 768) + 384 + 256 + 16 * 61 + 256
            + 256 + 256 + 256 + 512 + 768 + 384;

    @Test
    void measuredOnTheCpuEqualsTheHandCount() {
        LlamaModel model = new LlamaModel(new CpuBackend(), TINY);
        Initialization.initialize(model, 1);
        assertEquals(new ModelMemory(PARAMETERS * 4, 0, 0, 0), model.memory(), "before the first step: parameters only");

        int[] tokens = new int[16];
        Arrays.setAll(tokens, i -> (i * 7) % 61);
        model.forwardBackward(tokens, tokens, 2, 8, 1f / 16);
        ModelMemory expected = new ModelMemory(PARAMETERS * 4, 0, PARAMETERS * 4, (FP32_VALUES + ACTIVATION_VALUES) * 4);
        assertEquals(5872, PARAMETERS);
        assertEquals(expected, model.memory(), "the CPU's matmuls read the masters: no operand copy; activations in fp32");
        assertEquals(expected, ModelMemory.planned(TINY, 2, 8, 1, ModelMemory.Storage.CPU), "the planned account is the measured one");
    }

    @Test
    void plannedForBf16MixedHalvesTheActivationsAndAddsABf16Copy() {
        assertEquals(new ModelMemory(PARAMETERS * 4, PARAMETERS * 2, PARAMETERS * 4, FP32_VALUES * 4 + ACTIVATION_VALUES * 2),
                ModelMemory.planned(TINY, 2, 8, 1, ModelMemory.Storage.BF16_MIXED));
    }
}

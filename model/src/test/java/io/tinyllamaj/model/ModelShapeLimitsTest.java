package io.tinyllamaj.model;

import io.tinyllamaj.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Shapes no machine can hold are refused by name before any table or buffer is built. */
class ModelShapeLimitsTest {

    private static LlamaConfig shape(int vocab, int dim, int layers, int heads, int kvHeads, int intermediate) {
        return new LlamaConfig("x", vocab, dim, layers, heads, kvHeads, intermediate, 1e-5f, 1e4f, 16, false);
    }

    private static String refusal(LlamaConfig config) {
        return assertThrows(IllegalArgumentException.class, () -> new LlamaModel(new CpuBackend(), config)).getMessage();
    }

    @Test
    void aBillionLayersAreRefusedAtOnceNamingTheShapeAndTheMemory() {
        // test-tiny's blocks: 2 x 16 + 32 x 16 + 16 x 16 + 3 x 24 x 16 = 1,952 parameters each;
        // 1e9 of them, the embedding and lm_head (2 x 61 x 16) and the final norm (16): 1,952,000,001,968,
        // 7.808e12 bytes in fp32, and 4 KiB of tables a block, 4.096e12: 1.1904e13 bytes = 10.8 TiB
        String message = refusal(shape(61, 16, 1_000_000_000, 4, 2, 24));
        assertTrue(message.startsWith("model shape (vocab 61, dim 16, 1,000,000,000 layers, 4 heads, 2 kv heads, intermediate 24) "
                + "has 1,952,000,001,968 parameters; with its per-layer tables it needs 10.8 TiB, and the cpu backend holds at most "),
                message);
        assertTrue(message.matches(".* holds at most \\d+\\.\\d (MiB|GiB|TiB)"), message);
    }

    @Test
    void aShapeThatFitsStillBuilds() {
        LlamaModel model = new LlamaModel(new CpuBackend(), shape(61, 16, 1000, 4, 2, 24));
        assertEquals(1000L * 1952 + 2 * 61 * 16 + 16, model.layout().total());
    }

    @Test
    void parameterCountsBeyondTwoToThe53AreRefusedWithoutOverflow() {
        // 2^31 - 1 blocks of 202,383,360 parameters (dim 4096, 32 kv heads, intermediate 11008): 4.35e17
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> shape(32000, 4096, Integer.MAX_VALUE, 32, 32, 11008));
        assertEquals("model shape (vocab 32,000, dim 4,096, 2,147,483,647 layers, 32 heads, 32 kv heads, intermediate 11,008) "
                + "has 4.35e+17 parameters, more than the 9.01e+15 (2^53) this program counts", e.getMessage());
        // 1.03e19 parameters: a long would overflow (each tensor still under 2^31 values)
        e = assertThrows(IllegalArgumentException.class, () -> shape(32000, 26000, Integer.MAX_VALUE, 200, 200, 27000));
        assertTrue(e.getMessage().endsWith("has 1.03e+19 parameters, more than the 9.01e+15 (2^53) this program counts"), e.getMessage());
    }

    @Test
    void aTensorLargerThanOneArrayIsRefusedByName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> shape(1 << 20, 4096, 1, 32, 32, 64));
        assertEquals("model shape: the embedding (vocab_size x dim) is 1048576 x 4096 = 4,294,967,296 values; "
                + "one tensor holds at most 2,147,483,639", e.getMessage());
        // 2 x intermediate overflows an int: checked in long arithmetic
        e = assertThrows(IllegalArgumentException.class, () -> shape(64, 16, 1, 4, 2, 1 << 30));
        assertEquals("model shape: the gate/up projection (2 intermediate x dim) is 2147483648 x 16 = 34,359,738,368 values; "
                + "one tensor holds at most 2,147,483,639", e.getMessage());
        // (heads + 2 kv_heads) x head size overflows an int too: 3 x 2^29 x 2 rows
        e = assertThrows(IllegalArgumentException.class, () -> shape(1, 1 << 30, 1, 1 << 29, 1 << 29, 16));
        assertEquals("model shape: the q/k/v projection ((heads + 2 kv_heads) x head size by dim) is 3221225472 x 1073741824 "
                + "= 3,458,764,513,820,540,928 values; one tensor holds at most 2,147,483,639", e.getMessage());
    }

    @Test
    void normEpsAndRopeThetaMustBeFinite() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new LlamaConfig("x", 61, 16, 2, 4, 2, 24, 1e-5f, Float.POSITIVE_INFINITY, 16, false));
        assertEquals("model shape: rope_theta must be a finite positive number, got Infinity", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new LlamaConfig("x", 61, 16, 2, 4, 2, 24, Float.NaN, 1e4f, 16, false));
        assertEquals("model shape: norm_eps must be a finite positive number, got NaN", e.getMessage());
    }
}

package io.tinyllamaj.kernels.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The host-side fp32 -> bf16 conversion that uploads into bf16 activations use (and that the GPU
 * op checks round their inputs with): round to nearest, ties to even, as CUDA's
 * __float2bfloat16 and torch's .to(bfloat16). Expected bits are worked out by hand below.
 */
class Bf16RoundingTest {

    private static int bits(float value) {
        return CudaBackend.toBf16(value) & 0xFFFF;
    }

    @Test
    void exactValuesKeepTheirBits() {
        assertEquals(0x3F80, bits(1f));          // 1.0 = 0x3F800000
        assertEquals(0xC000, bits(-2f));         // -2.0 = 0xC0000000
        assertEquals(0x0000, bits(0f));
        assertEquals(0x8000, bits(-0f));
        assertEquals(0x7F80, bits(Float.POSITIVE_INFINITY));
        assertEquals(0xFF80, bits(Float.NEGATIVE_INFINITY));
    }

    @Test
    void roundsToNearestWithTiesToEven() {
        // bf16 keeps 7 mantissa bits: next to 1.0 the step is 2^-7.
        assertEquals(0x3F80, bits(1f + 0x1p-9f));             // a quarter step: down to 1.0
        assertEquals(0x3F81, bits(1f + 0x1p-8f + 0x1p-20f));  // just over half a step: up
        assertEquals(0x3F80, bits(1f + 0x1p-8f));             // exactly half, 1.0 even: stays
        assertEquals(0x3F82, bits(1f + 3 * 0x1p-8f));         // exactly half above 0x3F81 (odd): up to even
        assertEquals(0xBF82, bits(-(1f + 3 * 0x1p-8f)));      // the same for negative values
        assertEquals(0x4049, bits((float) Math.PI));          // pi = 0x40490FDB: the dropped 0x0FDB is under half
    }

    @Test
    void overflowAndNaN() {
        assertEquals(0x7F80, bits(Float.MAX_VALUE));          // 0x7F7FFFFF rounds up past the largest bf16
        assertEquals(0x7F7F, bits(0x1.FEp127f));              // the largest bf16 itself
        int nan = bits(Float.NaN);
        assertTrue((nan & 0x7F80) == 0x7F80 && (nan & 0x007F) != 0, Integer.toHexString(nan));
    }
}

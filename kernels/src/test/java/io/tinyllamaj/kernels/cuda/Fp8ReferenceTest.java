package io.tinyllamaj.kernels.cuda;

import org.junit.jupiter.api.Test;

import static io.tinyllamaj.kernels.cuda.Fp8Reference.Format.E4M3;
import static io.tinyllamaj.kernels.cuda.Fp8Reference.Format.E5M2;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The FP8 reference against values worked out by hand from the OCP formats. */
class Fp8ReferenceTest {

    @Test
    void e4m3RoundsToThreeMantissaBitsTiesToEven() {
        assertEquals(1.0, Fp8Reference.round(1.0f, E4M3));
        assertEquals(1.125, Fp8Reference.round(1.1f, E4M3));          // steps of 1/8 in [1, 2)
        assertEquals(1.0, Fp8Reference.round(1.0625f, E4M3));         // halfway between 1 and 1.125: to the even 1
        assertEquals(1.25, Fp8Reference.round(1.1875f, E4M3));        // halfway between 1.125 and 1.25: to the even 1.25
        assertEquals(0.1015625, Fp8Reference.round(0.1f, E4M3));      // 1.625 * 2^-4
        assertEquals(-240.0, Fp8Reference.round(-239.9f, E4M3));      // steps of 16 in [128, 256)
    }

    @Test
    void e4m3SaturatesAtFourFortyEightAndKeepsItsSubnormals() {
        assertEquals(448.0, Fp8Reference.round(448f, E4M3));
        assertEquals(448.0, Fp8Reference.round(463.9f, E4M3));        // 464 would tie to 448 (even); above rounds to 480, saturated
        assertEquals(448.0, Fp8Reference.round(1e6f, E4M3));
        assertEquals(-448.0, Fp8Reference.round(-500f, E4M3));
        assertEquals(Math.scalb(1.0, -9), Fp8Reference.round(0.0019f, E4M3)); // smallest subnormal 2^-9 = 0.00195
        assertEquals(0.0, Fp8Reference.round(0.0009f, E4M3));         // below half of it
        assertEquals(3 * Math.scalb(1.0, -9), Fp8Reference.round(0.0058f, E4M3));
        assertEquals(Math.scalb(1.0, -6), Fp8Reference.round(0.015625f, E4M3)); // smallest normal
    }

    @Test
    void e5m2HasTwoMantissaBitsAndRangeToFiftySevenThousand() {
        assertEquals(1.25, Fp8Reference.round(1.2f, E5M2));           // steps of 1/4 in [1, 2)
        assertEquals(1.0, Fp8Reference.round(1.125f, E5M2));          // tie to the even 1.0
        assertEquals(57344.0, Fp8Reference.round(57344f, E5M2));
        assertEquals(57344.0, Fp8Reference.round(1e9f, E5M2));
        assertEquals(Math.scalb(1.0, -16), Fp8Reference.round(1.6e-5f, E5M2)); // smallest subnormal 2^-16 = 1.53e-5
    }

    @Test
    void currentScalingMapsTheAmaxToTheLargestValue() {
        float[] x = {0.5f, -2f, 1f};
        float s = Fp8Reference.scale(x, E4M3);
        assertEquals(224f, s);
        double[] q = Fp8Reference.quantize(x, E4M3, s);
        assertEquals(112.0, q[0]);
        assertEquals(-448.0, q[1]);
        assertEquals(224.0, q[2]);
        assertEquals(1f, Fp8Reference.scale(new float[3], E4M3));
    }

    @Test
    void theMatmulDividesByBothScales() {
        // [1, 2] . [[3, 4]]^T = 11, quantized at scales 2 and 4 (exact in e4m3): 2*3 + 4*4 = ... / 8
        double[] out = Fp8Reference.matmul(new double[] {2, 4}, 2f, new double[] {12, 16}, 4f, 1, 2, 1);
        assertEquals(11.0, out[0], 1e-12);
    }
}

package io.tinyllamaj.kernels;

/**
 * RoPE's cos and sin tables [positions, hs / 2] as Hugging Face computes them: inverse frequencies
 * theta^(-2i / hs) and angles position * frequency in fp32. One definition for the CPU's rotation
 * and the tables the CUDA backend uploads, so both rotate by the same bits.
 */
public final class RopeTables {

    private RopeTables() {
    }

    /** {cos, sin}, each positions * (hs / 2) values, position-major. */
    public static float[][] cosSin(int hs, float theta, int positions) {
        int half = hs / 2;
        float[] inverseFrequency = new float[half];
        for (int i = 0; i < half; i++) {
            inverseFrequency[i] = (float) (1.0 / Math.pow(theta, (2.0 * i) / hs));
        }
        float[] cos = new float[positions * half];
        float[] sin = new float[positions * half];
        for (int p = 0; p < positions; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * inverseFrequency[i];
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
        return new float[][] {cos, sin};
    }
}

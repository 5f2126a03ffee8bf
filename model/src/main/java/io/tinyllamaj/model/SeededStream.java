package io.tinyllamaj.model;

/**
 * The stream of {@code new java.util.SplittableRandom(seed)} (SplitMix64 with its golden gamma:
 * each draw adds the gamma to the state and mixes it), entered at any position. Drawing k values
 * from {@code at(seed, p)} gives the values p .. p + k - 1 of the JDK generator's stream, so a
 * long run can be filled in parallel chunks with the bits of one sequential pass.
 */
final class SeededStream {

    private static final long GAMMA = 0x9E3779B97F4A7C15L;

    private long state;

    private SeededStream(long state) {
        this.state = state;
    }

    /** Positioned before the stream's value {@code position} (0 is the first). */
    static SeededStream at(long seed, long position) {
        return new SeededStream(seed + position * GAMMA);
    }

    long nextLong() {
        state += GAMMA;
        long z = state;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Uniform in [0, 1) from the top 53 bits, as SplittableRandom.nextDouble(). */
    double nextDouble() {
        return (nextLong() >>> 11) * 0x1.0p-53;
    }
}

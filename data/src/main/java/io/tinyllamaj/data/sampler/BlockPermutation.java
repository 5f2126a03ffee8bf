package io.tinyllamaj.data.sampler;

/**
 * A pseudo-random permutation of {@code [0, n)} evaluated one index at a time, so that a
 * source of hundreds of millions of blocks is shuffled without an array of that size and a
 * restored sampler needs only its position. A 4-round Feistel network permutes the smallest
 * power-of-four domain holding n; indices that land outside [0, n) are fed through again
 * (cycle walking), which stays inside [0, n) and keeps it a bijection. At most 4n domain, so
 * fewer than 4 rounds of walking on average.
 */
final class BlockPermutation {
    private static final int ROUNDS = 4;

    private final long n;
    private final int halfBits;
    private final long halfMask;
    private final long[] roundKeys = new long[ROUNDS];
    private final boolean identity;

    /** @param shuffle false gives the identity, for runs that read the data in order */
    BlockPermutation(long n, long seed, boolean shuffle) {
        this.n = n;
        this.identity = !shuffle || n <= 1;
        int bits = Math.max(2, 64 - Long.numberOfLeadingZeros(Math.max(1, n - 1)));
        this.halfBits = (bits + 1) / 2;
        this.halfMask = (1L << halfBits) - 1;
        long state = seed;
        for (int i = 0; i < ROUNDS; i++) {
            state = mix(state + 0x9E3779B97F4A7C15L);
            roundKeys[i] = state;
        }
    }

    long apply(long index) {
        if (index < 0 || index >= n) {
            throw new IndexOutOfBoundsException("block " + index + " outside [0, " + n + ")");
        }
        if (identity) {
            return index;
        }
        long x = index;
        do {
            x = feistel(x);
        } while (x >= n);
        return x;
    }

    private long feistel(long x) {
        long left = x >>> halfBits;
        long right = x & halfMask;
        for (long key : roundKeys) {
            long next = left ^ (mix(right ^ key) & halfMask);
            left = right;
            right = next;
        }
        return (left << halfBits) | right;
    }

    /** SplitMix64's finaliser: a fast 64-bit mixer with full avalanche. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}

package io.tinyllamaj.data.tokenizer;

import java.util.Arrays;

/**
 * A fixed-size open-addressing hash map from long keys to non-negative int values, with
 * linear probing. The encoder looks up one merge per adjacent symbol pair, so this sits on the
 * hot path: no boxing, keys and values in flat arrays, a power-of-two table at most half full.
 * Filled once at load time and read-only afterwards, hence safe to share between threads.
 */
final class LongIntMap {

    static final int ABSENT = -1;

    private final long[] keys;
    private final int[] values;
    private final int mask;

    LongIntMap(int expectedSize) {
        int capacity = Integer.highestOneBit(Math.max(4, expectedSize) * 2 - 1) << 1;
        keys = new long[capacity];
        values = new int[capacity];
        Arrays.fill(values, ABSENT);
        mask = capacity - 1;
    }

    /** Packs an ordered pair of ids into one key. */
    static long pair(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFF_FFFFL);
    }

    /** Stores {@code value} under {@code key} unless the key is present; returns the value now held. */
    int putIfAbsent(long key, int value) {
        if (value < 0) {
            throw new IllegalArgumentException("values must be non-negative: " + value);
        }
        int slot = slotOf(key);
        if (values[slot] == ABSENT) {
            keys[slot] = key;
            values[slot] = value;
        }
        return values[slot];
    }

    int get(long key) {
        return values[slotOf(key)];
    }

    private int slotOf(long key) {
        int slot = mix(key) & mask;
        while (values[slot] != ABSENT && keys[slot] != key) {
            slot = (slot + 1) & mask;
        }
        return slot;
    }

    /** The finaliser of MurmurHash3: packed id pairs are far from uniformly distributed. */
    private static int mix(long key) {
        key ^= key >>> 33;
        key *= 0xff51afd7ed558ccdL;
        key ^= key >>> 33;
        key *= 0xc4ceb9fe1a85ec53L;
        key ^= key >>> 33;
        return (int) key;
    }
}

package io.tinyllamaj.data.sampler;

import io.tinyllamaj.data.shards.TokenSource;

/** A token stream whose token i is i (plus an offset), so every drawn token says where it came from. */
record PositionTokens(String name, long tokenCount, int offset) implements TokenSource {
    @Override
    public void read(long position, int[] dst, int dstOffset, int length) {
        if (position < 0 || position + length > tokenCount) {
            throw new IndexOutOfBoundsException(position + "+" + length);
        }
        for (int i = 0; i < length; i++) {
            dst[dstOffset + i] = Math.toIntExact(offset + position + i);
        }
    }

    @Override
    public void close() {
    }
}

package io.tinyllamaj.data.shards;

import java.util.List;

/** Several shards read as one stream, in the order given. */
final class ConcatenatedSource implements TokenSource {
    private final String name;
    private final List<? extends TokenSource> parts;
    private final long[] start;

    ConcatenatedSource(String name, List<? extends TokenSource> parts) {
        this.name = name;
        this.parts = List.copyOf(parts);
        this.start = new long[parts.size() + 1];
        for (int i = 0; i < parts.size(); i++) {
            start[i + 1] = start[i] + parts.get(i).tokenCount();
        }
    }

    @Override
    public long tokenCount() {
        return start[parts.size()];
    }

    @Override
    public void read(long offset, int[] dst, int dstOffset, int length) {
        TokenSources.requireRange(name, offset, length, tokenCount());
        int part = partOf(offset);
        while (length > 0) {
            int n = (int) Math.min(length, start[part + 1] - offset);
            if (n > 0) {
                parts.get(part).read(offset - start[part], dst, dstOffset, n);
            }
            offset += n;
            dstOffset += n;
            length -= n;
            part++;
        }
    }

    private int partOf(long offset) {
        return TokenSources.rangeOf(start, parts.size(), offset);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public void close() {
        parts.forEach(TokenSource::close);
    }
}

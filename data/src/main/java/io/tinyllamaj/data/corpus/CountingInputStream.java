package io.tinyllamaj.data.corpus;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.function.LongConsumer;

/** Reports the bytes read so far from the file on disk (before decompression) for progress. */
final class CountingInputStream extends FilterInputStream {
    private final LongConsumer position;
    private long count;

    CountingInputStream(InputStream in, LongConsumer position) {
        super(in);
        this.position = position;
    }

    @Override
    public int read() throws IOException {
        int b = super.read();
        if (b >= 0) {
            position.accept(++count);
        }
        return b;
    }

    @Override
    public int read(byte[] buffer, int offset, int length) throws IOException {
        int n = super.read(buffer, offset, length);
        if (n > 0) {
            count += n;
            position.accept(count);
        }
        return n;
    }
}

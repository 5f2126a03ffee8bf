package io.tinyllamaj.data.corpus;

import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;

/**
 * Splits a byte stream on '\n' without decoding, so that a line with invalid UTF-8 is found
 * and reported on its own instead of being silently repaired by a Reader. A line longer than
 * {@code maxLineBytes} is read past, not kept, and flagged by {@link #tooLong()}.
 */
final class LineSplitter {
    private final InputStream in;
    private final int maxLineBytes;
    private final byte[] buffer = new byte[1 << 16];
    private int position;
    private int limit;
    private byte[] line = new byte[1 << 12];
    private int lineLength;
    private boolean tooLong;

    LineSplitter(InputStream in, int maxLineBytes) {
        this.in = in;
        this.maxLineBytes = maxLineBytes;
    }

    /** Reads the next line into {@link #bytes()}; false at the end of the stream. */
    boolean next() throws IOException {
        lineLength = 0;
        tooLong = false;
        boolean any = false;
        while (true) {
            if (position == limit) {
                limit = in.read(buffer, 0, buffer.length);
                position = 0;
                if (limit <= 0) {
                    limit = 0;
                    return any;
                }
            }
            any = true;
            int start = position;
            while (position < limit && buffer[position] != '\n') {
                position++;
            }
            append(start, position - start);
            if (position < limit) {
                position++;
                if (lineLength > 0 && line[lineLength - 1] == '\r') {
                    lineLength--;
                }
                return true;
            }
        }
    }

    private void append(int start, int length) {
        if (tooLong || lineLength + (long) length > maxLineBytes) {
            tooLong = true;
            lineLength = 0;
            return;
        }
        if (lineLength + length > line.length) {
            line = Arrays.copyOf(line, (int) Math.min(maxLineBytes, Math.max(2L * line.length, lineLength + length)));
        }
        System.arraycopy(buffer, start, line, lineLength, length);
        lineLength += length;
    }

    byte[] bytes() {
        return line;
    }

    int length() {
        return lineLength;
    }

    /** Whether the line just read was longer than the limit (its bytes are then not kept). */
    boolean tooLong() {
        return tooLong;
    }
}

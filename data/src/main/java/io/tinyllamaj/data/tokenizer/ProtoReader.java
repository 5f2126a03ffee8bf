package io.tinyllamaj.data.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * Just enough of the protobuf wire format to read a SentencePiece ModelProto: varints,
 * 32-bit floats, length-delimited fields (strings and nested messages), and skipping fields we
 * do not use. Malformed input throws {@link IllegalArgumentException} naming the source.
 */
final class ProtoReader {

    static final int VARINT = 0;
    static final int FIXED64 = 1;
    static final int LENGTH_DELIMITED = 2;
    static final int FIXED32 = 5;

    private final byte[] buffer;
    private final String source;
    private int position;
    private final int limit;
    private int tag;

    ProtoReader(byte[] buffer, String source) {
        this(buffer, 0, buffer.length, source);
    }

    private ProtoReader(byte[] buffer, int start, int limit, String source) {
        this.buffer = buffer;
        this.position = start;
        this.limit = limit;
        this.source = source;
    }

    /** Reads the next field's tag; false at the end of this message. */
    boolean next() {
        if (position >= limit) {
            return false;
        }
        long value = rawVarint();
        if (value >>> 3 == 0 || value > Integer.MAX_VALUE) {
            throw malformed("invalid field tag " + value);
        }
        tag = (int) value;
        return true;
    }

    int field() {
        return tag >>> 3;
    }

    int wireType() {
        return tag & 7;
    }

    long readVarint() {
        expect(VARINT);
        return rawVarint();
    }

    private long rawVarint() {
        long value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (position >= limit) {
                throw malformed("truncated varint");
            }
            byte b = buffer[position++];
            value |= (long) (b & 0x7F) << shift;
            if (b >= 0) {
                return value;
            }
        }
        throw malformed("varint longer than 10 bytes");
    }

    float readFloat() {
        expect(FIXED32);
        if (limit - position < 4) {
            throw malformed("truncated float");
        }
        int bits = (buffer[position] & 0xFF) | (buffer[position + 1] & 0xFF) << 8
                | (buffer[position + 2] & 0xFF) << 16 | (buffer[position + 3] & 0xFF) << 24;
        position += 4;
        return Float.intBitsToFloat(bits);
    }

    String readString() {
        int length = readLength();
        String value = new String(buffer, position, length, StandardCharsets.UTF_8);
        position += length;
        return value;
    }

    /** A reader over the nested message in this field. */
    ProtoReader readMessage() {
        int length = readLength();
        ProtoReader nested = new ProtoReader(buffer, position, position + length, source);
        position += length;
        return nested;
    }

    void skip() {
        switch (wireType()) {
            case VARINT -> readVarint();
            case FIXED64 -> advance(8);
            case LENGTH_DELIMITED -> position += readLength();
            case FIXED32 -> advance(4);
            default -> throw malformed("unsupported wire type " + wireType() + " in field " + field());
        }
    }

    /**
     * A length prefix within what is left of this message. A 10-byte varint can decode to a
     * negative number, which would move the position backwards (a loop over the same bytes)
     * or index before the buffer, so it is refused like an overlong one.
     */
    private int readLength() {
        expect(LENGTH_DELIMITED);
        long length = rawVarint();
        if (length < 0 || length > limit - position) {
            throw malformed("field " + field() + " claims " + length + " bytes, " + (limit - position) + " left");
        }
        return (int) length;
    }

    private void advance(int bytes) {
        if (bytes < 0 || limit - position < bytes) {
            throw malformed("truncated field " + field());
        }
        position += bytes;
    }

    private void expect(int wireType) {
        if (wireType() != wireType) {
            throw malformed("field " + field() + " has wire type " + wireType() + ", expected " + wireType);
        }
    }

    IllegalArgumentException malformed(String what) {
        return new IllegalArgumentException(source + ": malformed SentencePiece model (" + what + ")");
    }
}

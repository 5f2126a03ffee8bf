package io.tinyllamaj.data.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** Writes the few protobuf field kinds a SentencePiece ModelProto uses, so tests can build .model files by hand. */
final class ModelProtoWriter {

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    ModelProtoWriter varint(int field, long value) {
        tag(field, 0);
        writeVarint(value);
        return this;
    }

    ModelProtoWriter fixed32(int field, float value) {
        tag(field, 5);
        int bits = Float.floatToIntBits(value);
        for (int i = 0; i < 4; i++) {
            out.write(bits >>> (8 * i));
        }
        return this;
    }

    ModelProtoWriter string(int field, String value) {
        return bytes(field, value.getBytes(StandardCharsets.UTF_8));
    }

    ModelProtoWriter message(int field, ModelProtoWriter message) {
        return bytes(field, message.toByteArray());
    }

    /** A SentencePiece message: piece text, score and type (1 normal, 2 unknown, 3 control, 6 byte). */
    ModelProtoWriter piece(String text, float score, int type) {
        return message(1, new ModelProtoWriter().string(1, text).fixed32(2, score).varint(3, type));
    }

    byte[] toByteArray() {
        return out.toByteArray();
    }

    private ModelProtoWriter bytes(int field, byte[] value) {
        tag(field, 2);
        writeVarint(value.length);
        out.writeBytes(value);
        return this;
    }

    private void tag(int field, int wireType) {
        writeVarint((long) field << 3 | wireType);
    }

    private void writeVarint(long value) {
        while ((value & ~0x7FL) != 0) {
            out.write((int) (value & 0x7F) | 0x80);
            value >>>= 7;
        }
        out.write((int) value);
    }
}

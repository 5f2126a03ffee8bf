package io.tinyllamaj.data.shards;

import java.nio.charset.StandardCharsets;

/** A stand-in tokenizer for tests: one id per UTF-8 byte (byte + 3), EOS 2, vocabulary 259. */
final class ByteEncoder implements DocumentEncoder {
    @Override
    public int[] encode(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            ids[i] = (bytes[i] & 0xFF) + 3;
        }
        return ids;
    }

    @Override
    public int vocabSize() {
        return 259;
    }

    @Override
    public int eosId() {
        return 2;
    }

    @Override
    public String checksum() {
        return "bytes-v1";
    }
}

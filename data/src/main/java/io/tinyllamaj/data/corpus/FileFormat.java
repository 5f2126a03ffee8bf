package io.tinyllamaj.data.corpus;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * What a corpus file holds, told from its first bytes, so that a file given to the wrong source
 * is named at once instead of surfacing as thousands of unusable records.
 */
enum FileFormat {
    PARQUET("a parquet file", "starcoder"),
    ZSTD("zstd-compressed data", "slimpajama or jsonl"),
    JSON_LINES("JSON Lines", "slimpajama or jsonl"),
    OTHER("", "");

    static final byte[] ZSTD_MAGIC = {0x28, (byte) 0xB5, 0x2F, (byte) 0xFD};
    private static final byte[] PARQUET_MAGIC = "PAR1".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] BYTE_ORDER_MARK = {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF};

    private final String description;
    private final String sourcesThatReadIt;

    FileFormat(String description, String sourcesThatReadIt) {
        this.description = description;
        this.sourcesThatReadIt = sourcesThatReadIt;
    }

    String description() {
        return description;
    }

    String sourcesThatReadIt() {
        return sourcesThatReadIt;
    }

    static FileFormat of(Path file) throws IOException {
        return of(head(file));
    }

    static FileFormat of(byte[] head) {
        if (startsWith(head, PARQUET_MAGIC)) {
            return PARQUET;
        }
        if (startsWith(head, ZSTD_MAGIC)) {
            return ZSTD;
        }
        int first = startsWith(head, BYTE_ORDER_MARK) ? BYTE_ORDER_MARK.length : 0;
        return head.length > first && head[first] == '{' ? JSON_LINES : OTHER;
    }

    /** The first bytes of {@code file}, enough to tell the formats apart (fewer for a shorter file). */
    static byte[] head(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return in.readNBytes(BYTE_ORDER_MARK.length + 1);
        }
    }

    /** "52 4E 44 21": bytes as a magic number is written in format specifications. */
    static String hex(byte[] bytes, int count) {
        return HexFormat.ofDelimiter(" ").withUpperCase().formatHex(bytes, 0, Math.min(count, bytes.length));
    }

    static boolean startsWith(byte[] bytes, byte[] prefix) {
        return bytes.length >= prefix.length && Arrays.equals(bytes, 0, prefix.length, prefix, 0, prefix.length);
    }
}

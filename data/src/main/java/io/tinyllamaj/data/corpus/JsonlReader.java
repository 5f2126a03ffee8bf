package io.tinyllamaj.data.corpus;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.github.luben.zstd.ZstdInputStream;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.LongConsumer;

/**
 * JSON Lines, plain ({@code .jsonl}) or zstd-compressed ({@code .jsonl.zst}, as SlimPajama ships
 * them, told by the zstd magic): one object per line with the document in {@code text}. With
 * {@code excludedSet} set, lines whose {@code meta.redpajama_set_name} equals it are left out
 * (TinyLlama drops RedPajamaGithub from SlimPajama because StarCoderData covers code). A UTF-8
 * byte-order mark at the start of the file is skipped.
 */
public final class JsonlReader implements DocumentReader {
    private static final String BYTE_ORDER_MARK = "\uFEFF";
    // Jackson's default string limit (20M chars) would call a long but valid document malformed;
    // the line limit already bounds every string in a line.
    private static final ObjectMapper JSON = new ObjectMapper(JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder().maxStringLength(MAX_DOCUMENT_BYTES).build())
            .build());

    private final String excludedSet;
    private final int maxLineBytes;

    /**
     * @param excludedSet  a {@code meta.redpajama_set_name} to leave out, or null to keep all
     * @param maxLineBytes longer lines are reported as too long (at most {@link #MAX_DOCUMENT_BYTES})
     */
    JsonlReader(String excludedSet, int maxLineBytes) {
        this.excludedSet = excludedSet;
        this.maxLineBytes = maxLineBytes;
    }

    @Override
    public void read(Path file, DocumentSink sink, ReadReport report, LongConsumer bytesRead) throws IOException {
        byte[] head = FileFormat.head(file);
        boolean zstd = FileFormat.of(head) == FileFormat.ZSTD;
        if (!zstd && head.length > 0 && file.getFileName().toString().endsWith(".zst")) {
            report.problem(ProblemKind.NOT_ZSTD, file, 0, "bad magic " + FileFormat.hex(head, FileFormat.ZSTD_MAGIC.length)
                    + ", expected " + FileFormat.hex(FileFormat.ZSTD_MAGIC, FileFormat.ZSTD_MAGIC.length));
            return;
        }
        StrictUtf8 utf8 = new StrictUtf8();
        long lineNumber = 0;
        try (InputStream raw = new CountingInputStream(Files.newInputStream(file), bytesRead);
             InputStream in = zstd ? new ZstdInputStream(new BufferedInputStream(raw, 1 << 16)) : raw) {
            LineSplitter lines = new LineSplitter(in, maxLineBytes);
            while (true) {
                try {
                    if (!lines.next()) {
                        break;
                    }
                } catch (IOException e) {
                    // zstd-jni fails on a cut or damaged frame only when it needs the missing bytes;
                    // what was decoded before is kept, the rest of this file cannot be recovered.
                    report.problem(zstd ? ProblemKind.DAMAGED_ZSTD : ProblemKind.UNREADABLE_FILE,
                            file, lineNumber + 1, e.getMessage());
                    return;
                }
                lineNumber++;
                if (lines.tooLong()) {
                    report.problem(ProblemKind.TOO_LONG, file, lineNumber, "more than " + maxLineBytes + " bytes");
                } else {
                    readLine(file, lineNumber, lines, utf8, sink, report);
                }
            }
        }
    }

    private void readLine(Path file, long lineNumber, LineSplitter lines, StrictUtf8 utf8,
                          DocumentSink sink, ReadReport report) {
        if (isBlank(lines.bytes(), lines.length())) {
            return;
        }
        String line = utf8.decode(lines.bytes(), 0, lines.length());
        if (line == null) {
            report.problem(ProblemKind.INVALID_UTF8, file, lineNumber, "");
            return;
        }
        if (lineNumber == 1 && line.startsWith(BYTE_ORDER_MARK)) {
            line = line.substring(BYTE_ORDER_MARK.length());
        }
        JsonNode record;
        try {
            record = JSON.readTree(line);
        } catch (JsonProcessingException e) {
            report.problem(ProblemKind.MALFORMED_JSON, file, lineNumber, e.getOriginalMessage());
            return;
        }
        if (!record.isObject()) {
            report.problem(ProblemKind.MALFORMED_JSON, file, lineNumber, "not a JSON object");
            return;
        }
        JsonNode text = record.get("text");
        if (text == null || !text.isTextual()) {
            report.problem(ProblemKind.MISSING_TEXT, file, lineNumber, "no string field \"text\"");
            return;
        }
        if (excludedSet != null && excludedSet.equals(record.path("meta").path("redpajama_set_name").asText(null))) {
            report.exclude(excludedSet);
            return;
        }
        int surrogate = loneSurrogate(text.asText());
        if (surrogate >= 0) {
            // valid UTF-8 bytes, but "\\ud800" escapes a half character that UTF-8 cannot hold:
            // encoding it would silently become U+FFFD, so it counts as invalid UTF-8 text.
            report.problem(ProblemKind.INVALID_UTF8, file, lineNumber, surrogateDetail(text.asText(), surrogate));
            return;
        }
        if (text.asText().isEmpty()) {
            report.exclude("empty documents");
            return;
        }
        sink.document(text.asText());
    }

    /** The index of the first UTF-16 surrogate in {@code text} that is not half of a pair, or -1. */
    public static int loneSurrogate(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return i;
            }
        }
        return -1;
    }

    /** "lone surrogate \\ud800 from a JSON escape at character 5". */
    public static String surrogateDetail(String text, int index) {
        return String.format("lone surrogate \\u%04x from a JSON escape at character %d", (int) text.charAt(index), index);
    }

    private static boolean isBlank(byte[] bytes, int length) {
        for (int i = 0; i < length; i++) {
            if (bytes[i] != ' ' && bytes[i] != '\t' && bytes[i] != '\r') {
                return false;
            }
        }
        return true;
    }
}

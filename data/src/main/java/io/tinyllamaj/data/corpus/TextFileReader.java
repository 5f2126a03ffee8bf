package io.tinyllamaj.data.corpus;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.LongConsumer;

/** A plain UTF-8 text file is one document; a file over {@code maxBytes} is reported as too long. */
public final class TextFileReader implements DocumentReader {
    private final int maxBytes;

    TextFileReader(int maxBytes) {
        this.maxBytes = maxBytes;
    }

    @Override
    public void read(Path file, DocumentSink sink, ReadReport report, LongConsumer bytesRead) throws IOException {
        long size = Files.size(file);
        if (size > maxBytes) {
            bytesRead.accept(size);
            report.problem(ProblemKind.TOO_LONG, file, 0, "more than " + maxBytes + " bytes");
            return;
        }
        byte[] bytes = Files.readAllBytes(file);
        bytesRead.accept(bytes.length);
        String text = new StrictUtf8().decode(bytes, 0, bytes.length);
        if (text == null) {
            report.problem(ProblemKind.INVALID_UTF8, file, 0, "");
        } else if (text.isEmpty()) {
            report.exclude("empty documents");
        } else {
            sink.document(text);
        }
    }
}

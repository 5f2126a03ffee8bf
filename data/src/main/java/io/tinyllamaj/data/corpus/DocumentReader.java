package io.tinyllamaj.data.corpus;

import java.io.IOException;
import java.nio.file.Path;
import java.util.function.LongConsumer;

/**
 * Reads the documents of one file in order. Unusable records go to the report with their
 * location, and the reader carries on with the next one; only a failure to open the file at
 * all is thrown. {@code bytesRead} receives how far into the file (on disk) reading has got,
 * for progress display.
 */
public interface DocumentReader {
    /**
     * The largest record (a JSON line, a text file) read: 256 MiB, far above any real corpus
     * document (SlimPajama's longest are a few MB) and small enough to hold and parse in memory.
     */
    int MAX_DOCUMENT_BYTES = 1 << 28;

    void read(Path file, DocumentSink sink, ReadReport report, LongConsumer bytesRead) throws IOException;
}

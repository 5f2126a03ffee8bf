package io.tinyllamaj.data.corpus;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/** The corpora {@code prepare} reads, each with its file reader. */
public enum CorpusSource {
    /** SlimPajama: JSON Lines (usually .jsonl.zst), field text, RedPajamaGithub excluded. */
    SLIMPAJAMA("JSON Lines (.jsonl or .jsonl.zst)", FileFormat.PARQUET),
    /** StarCoderData: parquet, column content. */
    STARCODER("parquet files", FileFormat.ZSTD, FileFormat.JSON_LINES),
    /** Any JSON Lines (.jsonl or .jsonl.zst) with a text field; nothing excluded. */
    JSONL("JSON Lines (.jsonl or .jsonl.zst)", FileFormat.PARQUET),
    /** Plain UTF-8 files, one document per file. */
    TEXT("plain UTF-8 text files", FileFormat.PARQUET, FileFormat.ZSTD);

    static final String GITHUB_SUBSET = "RedPajamaGithub";

    private final String reads;
    /** Formats that only another source reads: a file in one of them was given to the wrong source. */
    private final List<FileFormat> formatsOfOtherSources;

    CorpusSource(String reads, FileFormat... formatsOfOtherSources) {
        this.reads = reads;
        this.formatsOfOtherSources = List.of(formatsOfOtherSources);
    }

    public DocumentReader reader() {
        return switch (this) {
            case SLIMPAJAMA -> new JsonlReader(GITHUB_SUBSET, DocumentReader.MAX_DOCUMENT_BYTES);
            case STARCODER -> new ParquetContentReader("content");
            case JSONL -> new JsonlReader(null, DocumentReader.MAX_DOCUMENT_BYTES);
            case TEXT -> new TextFileReader(DocumentReader.MAX_DOCUMENT_BYTES);
        };
    }

    /** Refuses, in one line, a file whose first bytes show it belongs to another source. */
    public void requireOwnFormat(Path file) throws IOException {
        FileFormat format = FileFormat.of(file);
        if (formatsOfOtherSources.contains(format)) {
            throw new IOException(file + ": " + format.description() + ", but source " + id() + " reads " + reads
                    + "; use source " + format.sourcesThatReadIt());
        }
    }

    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static CorpusSource parse(String id) {
        for (CorpusSource source : values()) {
            if (source.id().equalsIgnoreCase(String.valueOf(id))) {
                return source;
            }
        }
        throw new IllegalArgumentException("unknown source '" + id + "' (expected slimpajama, starcoder, jsonl or text)");
    }
}

package io.tinyllamaj.data.corpus;

import java.util.Locale;

/** The corpora {@code prepare} reads, each with its file reader. */
public enum CorpusSource {
    /** SlimPajama: JSON Lines (usually .jsonl.zst), field text, RedPajamaGithub excluded. */
    SLIMPAJAMA,
    /** StarCoderData: parquet, column content. */
    STARCODER,
    /** Any JSON Lines (.jsonl or .jsonl.zst) with a text field; nothing excluded. */
    JSONL,
    /** Plain UTF-8 files, one document per file. */
    TEXT;

    static final String GITHUB_SUBSET = "RedPajamaGithub";

    public DocumentReader reader() {
        return switch (this) {
            case SLIMPAJAMA -> new JsonlReader(GITHUB_SUBSET);
            case STARCODER -> new ParquetContentReader("content");
            case JSONL -> new JsonlReader(null);
            case TEXT -> new TextFileReader();
        };
    }

    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static CorpusSource parse(String id) {
        for (CorpusSource source : values()) {
            if (source.id().equals(id.toLowerCase(Locale.ROOT))) {
                return source;
            }
        }
        throw new IllegalArgumentException("unknown source '" + id + "' (expected slimpajama, starcoder, jsonl or text)");
    }
}

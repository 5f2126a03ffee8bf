package io.tinyllamaj.data.corpus;

/** The ways an input record can be unusable; each is counted and named in the summary. */
public enum ProblemKind {
    MALFORMED_JSON("malformed JSON"),
    MISSING_TEXT("missing text field"),
    INVALID_UTF8("invalid UTF-8"),
    NOT_ZSTD("not zstd"),
    DAMAGED_ZSTD("truncated or corrupt zstd data"),
    TOO_LONG("too long"),
    CORRUPT_PARQUET("corrupt parquet"),
    UNREADABLE_FILE("unreadable file");

    private final String label;

    ProblemKind(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }
}

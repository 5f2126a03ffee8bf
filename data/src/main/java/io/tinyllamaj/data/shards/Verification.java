package io.tinyllamaj.data.shards;

/** How much of a shard directory is checked when it is opened. */
public enum Verification {
    /** Magic, format version, headers and sizes against the manifest: cheap, always done. */
    HEADERS,
    /** Also every byte: SHA-256 against the manifest and every token id below the vocabulary size. */
    FULL
}

package io.tinyllamaj.data.corpus;

/** Receives documents in input order. */
@FunctionalInterface
public interface DocumentSink {
    void document(String text);
}

package io.tinyllamaj.data.corpus;

/** Thrown in strict mode at the first unusable record; the message is the one line to show. */
public final class CorpusProblemException extends IllegalArgumentException {
    public CorpusProblemException(String message) {
        super(message);
    }
}

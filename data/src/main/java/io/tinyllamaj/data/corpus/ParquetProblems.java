package io.tinyllamaj.data.corpus;

/** parquet-java's messages about a damaged file, made fit for one line a user reads. */
public final class ParquetProblems {

    private ParquetProblems() {
    }

    /** The message, with the reader's object name (LocalInputFile@1b2c3d) replaced: the caller names the file. */
    public static String message(Throwable e) {
        return String.valueOf(e.getMessage()).replaceAll("org\\.apache\\.parquet\\.io\\.LocalInputFile@\\p{XDigit}+", "the file");
    }
}

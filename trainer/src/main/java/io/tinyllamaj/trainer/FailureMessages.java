package io.tinyllamaj.trainer;

import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;

/** A failure as the one line a user reads: the command's error line, a failed rank's, a skipped step's. */
public final class FailureMessages {

    private FailureMessages() {
    }

    /** One line: our own exceptions carry complete messages; anything else is named by its type. */
    public static String describe(Throwable exception) {
        Throwable cause = exception;
        while ((cause.getMessage() == null || cause instanceof java.lang.reflect.UndeclaredThrowableException
                || cause instanceof java.io.UncheckedIOException) && cause.getCause() != null) {
            cause = cause.getCause();
        }
        if (cause instanceof FileSystemException f && f.getReason() == null && f.getFile() != null) {
            return f.getMessage() + ": " + fileProblem(f); // java.nio names only the file
        }
        String message = cause.getMessage();
        boolean expected = cause instanceof IllegalArgumentException || cause instanceof java.io.IOException
                || cause instanceof java.io.UncheckedIOException || cause instanceof IllegalStateException;
        if (message == null) {
            message = cause.getClass().getSimpleName();
        } else if (!expected) {
            message = cause.getClass().getSimpleName() + ": " + message;
        }
        return oneLine(message);
    }

    /** Line breaks as spaces, other control characters (NUL, ESC from a hostile file's text) escaped: one line on any terminal. */
    public static String oneLine(String message) {
        StringBuilder out = new StringBuilder(message.length());
        message.chars().forEach(c -> {
            if (c == '\n' || c == '\r' || c == '\t') {
                out.append(' ');
            } else if (Character.isISOControl(c)) {
                out.append(String.format("\\u%04x", c));
            } else {
                out.append((char) c);
            }
        });
        return out.toString();
    }

    private static String fileProblem(FileSystemException e) {
        return switch (e) {
            case AccessDeniedException denied -> "permission denied";
            case NoSuchFileException missing -> "no such file or directory";
            case FileAlreadyExistsException exists -> "already exists";
            case NotDirectoryException notDirectory -> "not a directory";
            case DirectoryNotEmptyException notEmpty -> "directory not empty";
            default -> e.getClass().getSimpleName();
        };
    }
}

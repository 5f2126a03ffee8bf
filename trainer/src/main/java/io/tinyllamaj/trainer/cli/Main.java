package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.model.MemoryBudget;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;

/**
 * The {@code tinyllama} root command. Every failure reaches the user as one line naming the
 * problem and a non-zero exit; {@code TINYLLAMA_DEBUG=1} adds the stack trace for bug reports.
 */
@Command(name = "tinyllama",
        mixinStandardHelpOptions = true,
        version = "TinyLlama-J 0.1.0",
        description = "Pretrain Llama-architecture language models (TinyLlama) on CPUs and GPUs.",
        subcommands = {
                ScoreCommand.class,
                EvalCommand.class,
                GenerateCommand.class,
                TokenizeCommand.class,
                PrepareCommand.class,
                PretrainCommand.class,
                PlanCommand.class,
                PlotCommand.class,
                ExportCommand.class,
                InspectCommand.class,
                CommandLine.HelpCommand.class,
        })
public final class Main {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the CLI and returns its exit code; tests call this instead of {@link #main}. */
    public static int run(String... args) {
        CommandLine cli = new CommandLine(new Main());
        // an empty path would otherwise mean the working directory: `--out ""` wrote there
        cli.registerConverter(Path.class, value -> {
            if (value.isBlank()) {
                throw new CommandLine.TypeConversionException("an empty path");
            }
            return Path.of(value);
        });
        cli.setExecutionExceptionHandler((exception, commandLine, parseResult) -> {
            reportFailure(exception);
            return 1;
        });
        // a mistyped flag gets its one line and a pointer to --help, not the whole usage text
        cli.setParameterExceptionHandler((exception, arguments) -> {
            String command = exception.getCommandLine().getCommandName();
            String suggestion = exception instanceof CommandLine.UnmatchedArgumentException unmatched
                    && !unmatched.getSuggestions().isEmpty() ? "; did you mean " + String.join(" or ", unmatched.getSuggestions()) + "?" : "";
            System.err.println("tinyllama: error: " + oneLine(exception.getMessage()) + suggestion
                    + " (see " + (command.equals("tinyllama") ? "" : "tinyllama ") + command + " --help)");
            return 2;
        });
        try {
            return cli.execute(args);
        } catch (OutOfMemoryError e) {
            System.err.println("tinyllama: error: out of Java heap (at most " + MemoryBudget.format(Runtime.getRuntime().maxMemory())
                    + "); raise it with TINYLLAMA_JAVA_OPTS=-Xmx<size>, for example -Xmx16g");
            return 1;
        }
    }

    static void reportFailure(Throwable exception) {
        System.err.println("tinyllama: error: " + describe(exception));
        if ("1".equals(System.getenv("TINYLLAMA_DEBUG"))) {
            exception.printStackTrace();
        }
    }

    /** One line: our own exceptions carry complete messages; anything else is named by its type. */
    static String describe(Throwable exception) {
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
    static String oneLine(String message) {
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

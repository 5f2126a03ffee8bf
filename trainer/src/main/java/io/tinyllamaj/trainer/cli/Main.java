package io.tinyllamaj.trainer.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

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
        cli.setExecutionExceptionHandler((exception, commandLine, parseResult) -> {
            reportFailure(exception);
            return 1;
        });
        return cli.execute(args);
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
        while ((cause.getMessage() == null || cause instanceof java.lang.reflect.UndeclaredThrowableException)
                && cause.getCause() != null) {
            cause = cause.getCause();
        }
        String message = cause.getMessage();
        boolean expected = cause instanceof IllegalArgumentException || cause instanceof java.io.IOException
                || cause instanceof java.io.UncheckedIOException || cause instanceof IllegalStateException;
        if (message == null) {
            message = cause.getClass().getSimpleName();
        } else if (!expected) {
            message = cause.getClass().getSimpleName() + ": " + message;
        }
        return message.replace('\n', ' ');
    }
}

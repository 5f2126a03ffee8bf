package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.model.MemoryBudget;
import io.tinyllamaj.trainer.FailureMessages;
import picocli.CommandLine;
import picocli.CommandLine.Command;

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
            System.err.println("tinyllama: error: " + FailureMessages.oneLine(exception.getMessage()) + suggestion
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
        System.err.println("tinyllama: error: " + FailureMessages.describe(exception));
        if ("1".equals(System.getenv("TINYLLAMA_DEBUG"))) {
            exception.printStackTrace();
        }
    }
}

package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.trainer.inspect.CheckpointSummary;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code tinyllama inspect}: a checkpoint's step, tokens, loss, LR and config hash, its files verified. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = {"Verify a checkpoint's files against their SHA-256 and print its step, tokens seen per source,",
                "last loss, LR and config hash. A corrupt file is named in one line (exit 1)."})
public final class InspectCommand implements Callable<Integer> {

    @Parameters(paramLabel = "RUN_DIR|CHECKPOINT_DIR",
            description = "A run directory (its latest checkpoint) or one checkpoint directory (checkpoints/step-NNNNNNNN).")
    private Path target;

    @Option(names = "--json", description = "Print one JSON object instead of lines.")
    private boolean json;

    @Override
    public Integer call() throws Exception {
        CheckpointSummary summary = CheckpointSummary.of(target);
        if (json) {
            System.out.println(summary.toJson().toString());
        } else {
            summary.lines().forEach(System.out::println);
        }
        return 0;
    }
}

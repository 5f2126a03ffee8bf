package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.trainer.plot.Charts;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code tinyllama plot <run>}: PNG charts of a run's metrics. */
@Command(name = "plot", mixinStandardHelpOptions = true,
        description = "Write <run>/plots/{loss,lr,throughput}.png from <run>/metrics.jsonl.")
public final class PlotCommand implements Callable<Integer> {

    @Parameters(paramLabel = "RUN_DIR", description = "A run directory (the --out of pretrain).")
    private Path run;

    @Option(names = "--compare", paramLabel = "OTHER_RUN",
            description = "Also chart RUN_DIR's loss beside these runs' (repeatable): <run>/plots/loss-compare.png, and theirs "
                    + "relative to RUN_DIR's: <run>/plots/loss-difference.png.")
    private List<Path> others = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        if (!others.isEmpty()) { // first: a run that cannot be compared is named before any chart is written
            List<Path> runs = new ArrayList<>(List.of(run));
            runs.addAll(others);
            for (Path file : Charts.compare(runs)) {
                System.out.println("wrote " + file);
            }
        }
        for (Path file : Charts.write(run)) {
            System.out.println("wrote " + file);
        }
        return 0;
    }
}

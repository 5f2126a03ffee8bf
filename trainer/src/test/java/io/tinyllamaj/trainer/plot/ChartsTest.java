package io.tinyllamaj.trainer.plot;

import io.tinyllamaj.trainer.cli.CliRun;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The comparison chart of several runs' losses, from metrics files written here by hand. */
class ChartsTest {

    private static Path run(Path dir, String name, String... lines) throws Exception {
        Path run = Files.createDirectories(dir.resolve(name));
        Files.writeString(run.resolve("metrics.jsonl"), String.join("\n", lines) + "\n");
        return run;
    }

    @Test
    void eachRunGetsItsTrainAndValidationLossNamedByItsDirectory(@TempDir Path dir) throws Exception {
        Path bf16 = run(dir, "bf16-mixed", "{\"step\":10,\"loss\":5.5}", "{\"step\":20,\"loss\":4.25,\"val_loss\":4.5}");
        Path fp8 = run(dir, "fp8-mixed", "{\"step\":10,\"loss\":5.75}", "{\"step\":20,\"loss\":4.0,\"val_loss\":4.375}",
                "{\"step\":30,\"loss\":3.5}");
        List<Charts.Line> lines = Charts.comparisonLines(List.of(bf16, fp8));
        assertEquals(List.of("train loss (bf16-mixed)", "train loss (fp8-mixed)", "validation loss (bf16-mixed)",
                "validation loss (fp8-mixed)"), lines.stream().map(l -> l.series().getKey().toString()).toList());
        assertEquals(2, lines.get(0).series().getItemCount());
        assertEquals(3.5, lines.get(1).series().getY(2).doubleValue());
        assertEquals(20.0, lines.get(3).series().getX(0).doubleValue());
        assertEquals(4.375, lines.get(3).series().getY(0).doubleValue());
        assertTrue(lines.get(2).markers() && !lines.get(0).markers(), "validation points get markers, train lines do not");
        List<Path> charts = Charts.compare(List.of(bf16, fp8));
        assertEquals(List.of(bf16.resolve("plots").resolve("loss-compare.png"), bf16.resolve("plots").resolve("loss-difference.png")),
                charts);
        for (Path chart : charts) {
            byte[] png = Files.readAllBytes(chart);
            assertTrue(png.length > 8 && png[1] == 'P' && png[2] == 'N' && png[3] == 'G', "a PNG file");
        }
    }

    /**
     * The difference chart by hand: bf16 logs 2.0 at steps 10..120, fp8 2.0 but 2.2 at step 120 and a
     * step 125 bf16 lacks. Windows of 10 common steps end at 100 (0%), 110 (0%) and 120 (steps 30..120:
     * 20.2 / 20 - 1 = +1%); validation 4.1 against 4.0 at step 60 is +2.5%, and fp8's step-70 evaluation,
     * which bf16 lacks, is left out.
     */
    @Test
    void theDifferenceChartIsEachRunsLossOverTheFirstsInTrailingWindows(@TempDir Path dir) throws Exception {
        List<String> base = new java.util.ArrayList<>(), other = new java.util.ArrayList<>();
        for (int step = 10; step <= 120; step += 10) {
            base.add("{\"step\":" + step + ",\"loss\":2.0" + (step == 60 ? ",\"val_loss\":4.0" : "") + "}");
            other.add("{\"step\":" + step + ",\"loss\":" + (step == 120 ? "2.2" : "2.0")
                    + (step == 60 ? ",\"val_loss\":4.1" : step == 70 ? ",\"val_loss\":3.0" : "") + "}");
        }
        other.add("{\"step\":125,\"loss\":9.0}");
        Path bf16 = run(dir, "bf16-mixed", base.toArray(String[]::new));
        Path fp8 = run(dir, "fp8-mixed", other.toArray(String[]::new));
        List<Charts.Line> lines = Charts.differenceLines(List.of(bf16, fp8));
        assertEquals(List.of("train loss, 10 logged steps (fp8-mixed)", "validation loss (fp8-mixed)"),
                lines.stream().map(l -> l.series().getKey().toString()).toList());
        var train = lines.get(0).series();
        assertEquals(3, train.getItemCount());
        assertEquals(100.0, train.getX(0).doubleValue());
        assertEquals(0.0, train.getY(1).doubleValue(), 1e-12);
        assertEquals(120.0, train.getX(2).doubleValue());
        assertEquals(1.0, train.getY(2).doubleValue(), 1e-12);
        var validation = lines.get(1).series();
        assertEquals(1, validation.getItemCount());
        assertEquals(2.5, validation.getY(0).doubleValue(), 1e-12);
        assertTrue(lines.get(1).markers() && !lines.get(0).markers());
    }

    /**
     * Records with loss_mean (the mean over each logging interval): the charts draw it, not the
     * logged step's own loss, and the difference chart takes every logged point as it is: bf16's
     * means 2.0 and 4.0 against fp8's 2.1 and 3.9 are +5% and -2.5%.
     */
    @Test
    void recordsWithLossMeanAreDrawnByIt(@TempDir Path dir) throws Exception {
        Path bf16 = run(dir, "bf16-mixed", "{\"step\":10,\"loss\":1.0,\"loss_mean\":2.0}", "{\"step\":20,\"loss\":9.0,\"loss_mean\":4.0}");
        Path fp8 = run(dir, "fp8-mixed", "{\"step\":10,\"loss\":1.5,\"loss_mean\":2.1}", "{\"step\":20,\"loss\":7.0,\"loss_mean\":3.9}");
        List<Charts.Line> lines = Charts.comparisonLines(List.of(bf16, fp8));
        assertEquals(4.0, lines.get(0).series().getY(1).doubleValue());
        assertEquals(2.1, lines.get(1).series().getY(0).doubleValue());
        var train = Charts.differenceLines(List.of(bf16, fp8)).get(0).series();
        assertEquals("train loss, mean of each logging interval (fp8-mixed)", train.getKey());
        assertEquals(2, train.getItemCount());
        assertEquals(5.0, train.getY(0).doubleValue(), 1e-12);
        assertEquals(-2.5, train.getY(1).doubleValue(), 1e-12);
    }

    @Test
    void runsOfOneDirectoryNameAreNamedByTheirPaths(@TempDir Path dir) throws Exception {
        Path a = run(dir.resolve("a"), "run", "{\"step\":1,\"loss\":2.0}");
        Path b = run(dir.resolve("b"), "run", "{\"step\":1,\"loss\":3.0}");
        List<Charts.Line> lines = Charts.comparisonLines(List.of(a, b));
        assertEquals("train loss (" + a + ")", lines.get(0).series().getKey());
    }

    @Test
    void aRunNamedTwiceIsRefused(@TempDir Path dir) throws Exception {
        Path a = run(dir, "a", "{\"step\":1,\"loss\":2.0}");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Charts.compare(List.of(a, dir.resolve("a/../a"))));
        assertEquals(dir.resolve("a/../a") + " is named twice among the runs to compare", e.getMessage());
    }

    @Test
    void aRunThatCannotBeComparedIsNamedBeforeAnyChartIsWritten(@TempDir Path dir) throws Exception {
        Path good = run(dir, "good", "{\"step\":1,\"loss\":2.0}");
        CliRun run = CliRun.of("plot", good.toString(), "--compare", dir.resolve("missing").toString());
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + dir.resolve("missing") + " has no metrics.jsonl", run.err().strip());
        assertFalse(Files.exists(good.resolve("plots")));
    }

    @Test
    void aRunWithoutMetricsIsNamedInOneLine(@TempDir Path dir) throws Exception {
        Path good = run(dir, "good", "{\"step\":1,\"loss\":2.0}");
        Path empty = Files.createDirectories(dir.resolve("empty"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Charts.compare(List.of(good, empty)));
        assertEquals(empty + " has no metrics.jsonl", e.getMessage());
    }
}

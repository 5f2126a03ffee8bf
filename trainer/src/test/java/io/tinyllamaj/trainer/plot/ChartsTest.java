package io.tinyllamaj.trainer.plot;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
        Path chart = Charts.compare(List.of(bf16, fp8));
        assertEquals(bf16.resolve("plots").resolve("loss-compare.png"), chart);
        byte[] png = Files.readAllBytes(chart);
        assertTrue(png.length > 8 && png[1] == 'P' && png[2] == 'N' && png[3] == 'G', "a PNG file");
    }

    @Test
    void runsOfOneDirectoryNameAreNamedByTheirPaths(@TempDir Path dir) throws Exception {
        Path a = run(dir.resolve("a"), "run", "{\"step\":1,\"loss\":2.0}");
        Path b = run(dir.resolve("b"), "run", "{\"step\":1,\"loss\":3.0}");
        List<Charts.Line> lines = Charts.comparisonLines(List.of(a, b));
        assertEquals("train loss (" + a + ")", lines.get(0).series().getKey());
    }

    @Test
    void aRunWithoutMetricsIsNamedInOneLine(@TempDir Path dir) throws Exception {
        Path good = run(dir, "good", "{\"step\":1,\"loss\":2.0}");
        Path empty = Files.createDirectories(dir.resolve("empty"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Charts.compare(List.of(good, empty)));
        assertEquals(empty + " has no metrics.jsonl", e.getMessage());
    }
}

package io.tinyllamaj.trainer.run;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The plain progress lines a log file gets, from values chosen here. */
class ProgressLinesTest {

    @Test
    void aLoggedLineShowsTheIntervalsMeanBesideTheStepsLossAndAnUnloggedStepPrintsNothing() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Progress.Lines lines = new Progress.Lines(800, new PrintStream(bytes, true, StandardCharsets.UTF_8));
        LossWindow four = LossWindow.EMPTY.add(5.5).add(5.25).add(Double.NaN).add(5.0).add(4.75); // 20.5 / 4, the NaN left out
        lines.step(119, 4.75, four, 3e-4, 0.5, 12345, false);
        lines.step(120, 4.75, four, 3e-4, 0.5, 12345, true);
        lines.step(121, 4.5, LossWindow.EMPTY.add(4.5), 3e-4, 0.5, 12345, true);
        String[] printed = bytes.toString(StandardCharsets.UTF_8).split("\n");
        assertEquals(2, printed.length, "only the logged steps print");
        assertTrue(printed[0].startsWith("step 120/800 | loss 4.7500 | loss_mean 5.1250 | lr 3.000e-04 | grad_norm 0.500 | 12,345 tok/s | "),
                printed[0]);
        assertTrue(printed[1].startsWith("step 121/800 | loss 4.5000 | lr 3.000e-04 | "), "one step: no mean: " + printed[1]);
    }
}

package io.tinyllamaj.trainer.run;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The guard on hand-made loss sequences whose mean and standard deviation are worked out by hand. */
class SpikeGuardTest {

    @Test
    void judgesAgainstTheMeanAndDeviationOfTheAppliedWindow() {
        SpikeGuard guard = new SpikeGuard(4, 2.0);
        for (double loss : new double[] {1, 3, 1}) {
            assertFalse(guard.judge(1000).spike(), "nothing is judged before the window is full");
            guard.applied(loss);
        }
        guard.applied(3);
        // window 1, 3, 1, 3: mean 2, population std 1, bar 2 + 2 x 1 = 4
        SpikeGuard.Verdict at4 = guard.judge(4.0);
        assertFalse(at4.spike(), "equal to the bar is not above it");
        assertEquals(2.0, at4.mean(), 0);
        assertEquals(1.0, at4.std(), 0);
        assertTrue(guard.judge(4.0001).spike());
        guard.spiked();
        assertTrue(guard.judge(5).spike(), "a spike does not enter the window, so the bar stays at 4");
        guard.spiked();
        assertEquals(2, guard.inRow());
        guard.applied(3);
        assertEquals(0, guard.inRow());
        assertEquals(2, guard.total());
        // window 3, 1, 3, 3: mean 2.5, deviations 0.5, 1.5, 0.5, 0.5, variance 3/4, bar 2.5 + 2 sqrt(0.75) = 4.2320508...
        assertFalse(guard.judge(4.232).spike());
        assertTrue(guard.judge(4.2321).spike());
    }

    @Test
    void aRestoredGuardJudgesAsTheOriginal() {
        SpikeGuard original = new SpikeGuard(3, 1.0);
        for (double loss : new double[] {5, 4, 3, 2}) {
            original.applied(loss);
        }
        original.spiked();
        SpikeGuard.State state = original.state();
        assertEquals(List.of(4.0, 3.0, 2.0), state.losses());
        assertEquals(1, state.inRow());
        assertEquals(1, state.total());
        SpikeGuard restored = new SpikeGuard(3, 1.0);
        restored.restore(state);
        // window 4, 3, 2: mean 3, std sqrt(2/3) = 0.8164966, bar 3.8164966
        assertFalse(restored.judge(3.8164).spike());
        assertTrue(restored.judge(3.8166).spike());
        assertEquals(1, restored.inRow());
        // a shorter window keeps the newest losses: 3, 2, mean 2.5, std 0.5, bar 3
        SpikeGuard shorter = new SpikeGuard(2, 1.0);
        shorter.restore(state);
        assertFalse(shorter.judge(3.0).spike());
        assertTrue(shorter.judge(3.0001).spike());
    }

    @Test
    void offJudgesNothingAndKeepsNothing() {
        SpikeGuard off = new SpikeGuard(0, 1.0);
        off.applied(1);
        off.applied(1);
        assertFalse(off.judge(1e9).spike());
        assertEquals(SpikeGuard.State.EMPTY, off.state());
    }

    @Test
    void aWindowThatIsNotFiniteOrCountsThatDoNotFitAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new SpikeGuard.State(List.of(1.0, Double.NaN), 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new SpikeGuard.State(List.of(), 3, 2));
        assertThrows(IllegalArgumentException.class, () -> new SpikeGuard.State(List.of(), -1, 0));
    }
}

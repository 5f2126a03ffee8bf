package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Tensor;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A signal that lands while this rank waits inside a collective (mpirun's SIGTERM to the survivors
 * of a dead rank) names that collective: the run's stop handler keeps the JVM from shutting down,
 * so the shutdown hook's report would never print before the SIGKILL that follows.
 */
class WatchdogSignalTest {

    /** One rank whose barrier waits until released: a peer that never arrives. */
    private static final class StuckBarrier implements Collectives {
        final CountDownLatch entered = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);

        @Override public int rank() { return 0; }
        @Override public int size() { return 2; }
        @Override public void allReduceSum(Tensor t) { }
        @Override public void reduceScatterSum(Tensor buffer) { }
        @Override public void allGather(Tensor buffer) { }
        @Override public void broadcast(Tensor t, int root) { }
        @Override public double allReduceSum(double value) { return value; }
        @Override public double allReduceMax(double value) { return value; }
        @Override public Collectives split(int color, int key) { return this; }
        @Override public void close() { }

        @Override
        public void barrier() {
            entered.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Test
    void aSignalInsideACollectiveNamesItAndTheOnesBefore() throws Exception {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        StuckBarrier inner = new StuckBarrier();
        try (Watchdog watchdog = new Watchdog(0, Duration.ofMinutes(5), new PrintStream(err, true, StandardCharsets.UTF_8))) {
            Collectives world = watchdog.watch(inner, "world");
            world.allReduceSum(1.0);
            watchdog.reportSignal("SIGTERM");
            assertEquals("", err.toString(StandardCharsets.UTF_8), "outside a collective a signal is the run's business alone");
            Thread waiting = Thread.ofPlatform().start(world::barrier);
            inner.entered.await();
            watchdog.reportSignal("SIGTERM");
            inner.release.countDown();
            waiting.join();
        }
        String line = err.toString(StandardCharsets.UTF_8);
        assertTrue(line.startsWith("rank 0: SIGTERM inside collective #2 barrier on world (0 values) after "), line);
        assertTrue(line.endsWith(" s (another rank failed?). Last completed collectives: #1 allReduceSum(scalar) on world (1 values)\n"), line);
    }
}

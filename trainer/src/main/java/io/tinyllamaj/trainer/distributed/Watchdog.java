package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Tensor;
import sun.misc.Signal;
import sun.misc.SignalHandler;

import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Turns a hung collective into an error, like PyTorch's NCCL watchdog and flight recorder:
 * a collective that has not returned within {@code timeout} makes this process print which
 * collective it was (its group, size, how many came before, the last few completed) and exit
 * with {@link #EXIT_CODE}. mpirun then ends the other ranks. A rank that dies is already
 * caught by Open MPI, which terminates the job; the shutdown hook and a SIGTERM/SIGINT handler
 * (wrapping the one installed before) name the collective this rank was in when that happened.
 *
 * <p>The watchdog thread never calls MPI or NCCL (the library runs at MPI_THREAD_FUNNELED, and
 * a hung library may hold its locks); it only prints and halts. That works because the
 * collectives are plain downcalls: a thread inside one is "in native" and does not hold up
 * the safepoint that {@code Runtime.halt} needs.
 */
public final class Watchdog implements AutoCloseable {

    /** The exit status of a rank ended by the watchdog (as timeout(1) uses). */
    public static final int EXIT_CODE = 124;
    private static final int HISTORY = 8;

    private record Call(String name, String group, long floats, long sequence, long startNanos) {
        String describe() {
            return String.format(Locale.ROOT, "#%d %s on %s (%d values)", sequence, name, group, floats);
        }
    }

    private final int worldRank;
    private final long timeoutNanos;
    private final PrintStream err;
    private final Thread thread;
    private final Thread shutdownHook;
    private final Deque<String> history = new ArrayDeque<>();
    private final Map<Signal, SignalHandler> replaced = new LinkedHashMap<>();
    private volatile Call current;
    private volatile boolean closed;
    private long sequence;

    public Watchdog(int worldRank, Duration timeout, PrintStream err) {
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("the collective timeout must be positive, got " + timeout);
        }
        this.worldRank = worldRank;
        this.timeoutNanos = timeout.toNanos();
        this.err = err;
        this.thread = Thread.ofPlatform().daemon().name("collective-watchdog").unstarted(this::watch);
        this.shutdownHook = Thread.ofPlatform().unstarted(this::reportAtShutdown);
        thread.start();
        Runtime.getRuntime().addShutdownHook(shutdownHook);
        // mpirun ends the survivors of a dead rank with SIGTERM, then SIGKILL. The run's own SIGTERM handler
        // (a stop request) keeps the JVM from shutting down, so the hook above never runs for them: the
        // collective a signal lands in is named here, before the handler it wraps runs.
        for (String name : new String[] {"TERM", "INT"}) {
            try {
                Signal signal = new Signal(name);
                SignalHandler[] previous = new SignalHandler[1];
                previous[0] = Signal.handle(signal, s -> {
                    reportSignal("SIG" + s.getName());
                    if (previous[0] != SignalHandler.SIG_IGN && previous[0] != SignalHandler.SIG_DFL) {
                        previous[0].handle(s);
                    } else if (previous[0] == SignalHandler.SIG_DFL) {
                        System.exit(128 + s.getNumber()); // the default action, through the JVM's shutdown (and the hook)
                    }
                });
                replaced.put(signal, previous[0]);
            } catch (IllegalArgumentException unavailable) {
                // -Xrs, or a platform without this signal
            }
        }
    }

    /** Names the collective this rank is inside when {@code signal} arrives, if any. */
    void reportSignal(String signal) {
        Call call = current;
        if (call != null && !closed) {
            err.printf(Locale.ROOT, "rank %d: %s inside collective %s after %.1f s (another rank failed?). "
                            + "Last completed collectives: %s%n",
                    worldRank, signal, call.describe(), (System.nanoTime() - call.startNanos()) / 1e9, recent());
            err.flush();
        }
    }

    /** Wraps a group's collectives so each call is watched; {@code group} names it in reports ("world", "node"). */
    public Collectives watch(Collectives collectives, String group) {
        return new Watched(collectives, group);
    }

    private void enter(String name, String group, long floats) {
        current = new Call(name, group, floats, ++sequence, System.nanoTime());
    }

    private void exit() {
        Call done = current;
        current = null;
        synchronized (history) {
            if (history.size() == HISTORY) {
                history.removeFirst();
            }
            history.addLast(done.describe());
        }
    }

    private void watch() {
        long poll = Math.max(1_000_000L, Math.min(timeoutNanos / 10, 1_000_000_000L));
        while (!closed) {
            Call call = current;
            if (call != null && System.nanoTime() - call.startNanos() > timeoutNanos) {
                err.printf(Locale.ROOT, "rank %d: collective %s did not finish within %.1f s: another rank is stuck or dead; "
                                + "exiting with status %d. Last completed collectives: %s%n",
                        worldRank, call.describe(), timeoutNanos / 1e9, EXIT_CODE, recent());
                err.flush();
                Runtime.getRuntime().halt(EXIT_CODE);
            }
            try {
                Thread.sleep(Duration.ofNanos(poll));
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private void reportAtShutdown() {
        Call call = current;
        if (call != null && !closed) {
            err.printf(Locale.ROOT, "rank %d: terminated inside collective %s after %.1f s (another rank failed?). "
                            + "Last completed collectives: %s%n",
                    worldRank, call.describe(), (System.nanoTime() - call.startNanos()) / 1e9, recent());
            err.flush();
        }
    }

    private String recent() {
        synchronized (history) {
            return history.isEmpty() ? "none" : String.join(", ", history);
        }
    }

    @Override
    public void close() {
        closed = true;
        thread.interrupt();
        replaced.forEach(Signal::handle);
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException shuttingDown) {
            // the hook is running or has run; nothing to remove
        }
    }

    private final class Watched implements Collectives {
        private final Collectives inner;
        private final String group;

        Watched(Collectives inner, String group) {
            this.inner = inner;
            this.group = group;
        }

        @Override
        public int rank() {
            return inner.rank();
        }

        @Override
        public int size() {
            return inner.size();
        }

        @Override
        public void allReduceSum(Tensor t) {
            run("allReduceSum", t.length(), () -> inner.allReduceSum(t));
        }

        @Override
        public void reduceSum(Tensor t, int root) {
            run("reduceSum", t.length(), () -> inner.reduceSum(t, root));
        }

        @Override
        public void reduceScatterSum(Tensor buffer) {
            run("reduceScatterSum", buffer.length(), () -> inner.reduceScatterSum(buffer));
        }

        @Override
        public void allGather(Tensor buffer) {
            run("allGather", buffer.length(), () -> inner.allGather(buffer));
        }

        @Override
        public void broadcast(Tensor t, int root) {
            run("broadcast", t.length(), () -> inner.broadcast(t, root));
        }

        @Override
        public Pending broadcastAsync(Tensor t, int root) {
            return started("broadcast", t.length(), () -> inner.broadcastAsync(t, root));
        }

        @Override
        public Pending reduceSumAsync(Tensor t, int root) {
            return started("reduceSum", t.length(), () -> inner.reduceSumAsync(t, root));
        }

        /** The start is watched as one call and the completion as another that names it ("completing #12 broadcast"). */
        private Pending started(String name, long floats, Supplier<Pending> start) {
            Pending pending = call(name + " (started)", floats, start);
            long started = sequence;
            return () -> run("completing #" + started + " " + name, floats, pending::complete);
        }

        @Override
        public void barrier() {
            run("barrier", 0, inner::barrier);
        }

        @Override
        public double allReduceSum(double value) {
            return call("allReduceSum(scalar)", 1, () -> inner.allReduceSum(value));
        }

        @Override
        public double allReduceMax(double value) {
            return call("allReduceMax(scalar)", 1, () -> inner.allReduceMax(value));
        }

        @Override
        public Collectives split(int color, int key) {
            return new Watched(call("split", 0, () -> inner.split(color, key)), group + "/" + color);
        }

        private void run(String name, long floats, Runnable body) {
            call(name, floats, () -> {
                body.run();
                return null;
            });
        }

        private <T> T call(String name, long floats, Supplier<T> body) {
            enter(name, group, floats);
            try {
                return body.get();
            } finally {
                exit();
            }
        }

        @Override
        public void close() {
            inner.close();
        }
    }
}

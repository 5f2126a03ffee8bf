package io.tinyllamaj.trainer.run;

import sun.misc.Signal;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * SIGTERM and SIGINT ask the run to stop: the loop finishes its step, writes one complete
 * checkpoint and returns, and the process exits 0. The handlers replace the JVM's own, so no
 * shutdown starts under the checkpoint write. A second signal while the first is pending
 * ends the process at once (exit 130), for an impatient Ctrl-C.
 */
public final class StopSignal {

    private final AtomicInteger received = new AtomicInteger();
    private volatile String name;

    /** A signal that nothing raises, for tests and callers that handle stopping themselves. */
    public static StopSignal none() {
        return new StopSignal();
    }

    /** Installs handlers for SIGTERM and SIGINT. */
    public static StopSignal install() {
        StopSignal stop = new StopSignal();
        for (String signal : new String[] {"TERM", "INT"}) {
            try {
                Signal.handle(new Signal(signal), s -> stop.request("SIG" + s.getName()));
            } catch (IllegalArgumentException unavailable) {
                // the JVM was started with -Xrs or the platform lacks this signal
            }
        }
        return stop;
    }

    public void request(String why) {
        name = why;
        if (received.incrementAndGet() > 1) {
            System.err.println("tinyllama: second " + why + ": exiting without a checkpoint");
            Runtime.getRuntime().halt(130);
        }
    }

    public boolean requested() {
        return received.get() > 0;
    }

    public String reason() {
        return name;
    }
}

package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.mpi.Mpi;
import io.tinyllamaj.trainer.FailureMessages;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/**
 * The process's place in the job and what must be released at the end: the world group, the
 * groups split from it, the watchdog and (when this process started it) MPI itself.
 */
final class Ranks implements AutoCloseable {

    private final Collectives world;
    private final Mpi mpi;
    private final Watchdog watchdog;
    private final PrintStream err;
    private final List<Collectives> owned = new ArrayList<>();

    Ranks(Collectives world, Mpi mpi, Watchdog watchdog, PrintStream err) {
        this.world = world;
        this.mpi = mpi;
        this.watchdog = watchdog;
        this.err = err;
    }

    /** One process, no MPI. */
    static Ranks single() {
        return new Ranks(SingleRankCollectives.INSTANCE, null, null, System.err);
    }

    Collectives world() {
        return world;
    }

    /** A group split from the world, closed with it. */
    Collectives split(int color, int key) {
        Collectives group = world.split(color, key);
        owned.add(group);
        return group;
    }

    void abort(Throwable cause) {
        err.println("rank " + world.rank() + " of " + world.size() + " failed: " + FailureMessages.describe(cause) + (mpi != null ? "; aborting all ranks" : ""));
        err.flush();
        if (mpi != null && mpi.active()) {
            mpi.abort(mpi.world(), 1);
        }
    }

    @Override
    public void close() {
        for (int i = owned.size() - 1; i >= 0; i--) {
            owned.get(i).close();
        }
        owned.clear();
        world.close();
        if (watchdog != null) {
            watchdog.close();
        }
        if (mpi != null) {
            mpi.finish();
        }
    }
}

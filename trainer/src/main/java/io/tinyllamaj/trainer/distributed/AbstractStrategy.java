package io.tinyllamaj.trainer.distributed;

/**
 * What every strategy holds the same way: its name and the job's ranks, through which it
 * reaches the world group, aborts the job and releases it.
 */
abstract sealed class AbstractStrategy implements Strategy permits DataParallel, Sharded {

    private final Ranks ranks;
    private final String name;

    AbstractStrategy(Ranks ranks, String name) {
        this.ranks = ranks;
        this.name = name;
    }

    @Override
    public final String name() {
        return name;
    }

    @Override
    public final Collectives world() {
        return ranks.world();
    }

    @Override
    public final void abort(Throwable cause) {
        ranks.abort(cause);
    }

    @Override
    public final void close() {
        ranks.close();
    }
}

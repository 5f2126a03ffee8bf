package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Tensor;

/** A group of one: every collective leaves its data as it is. Single-process runs never touch MPI. */
public final class SingleRankCollectives implements Collectives {

    public static final SingleRankCollectives INSTANCE = new SingleRankCollectives();

    private SingleRankCollectives() {
    }

    @Override
    public int rank() {
        return 0;
    }

    @Override
    public int size() {
        return 1;
    }

    @Override
    public void allReduceSum(Tensor t) {
    }

    @Override
    public void reduceScatterSum(Tensor buffer) {
    }

    @Override
    public void allGather(Tensor buffer) {
    }

    @Override
    public void broadcast(Tensor t, int root) {
        if (root != 0) {
            throw new IllegalArgumentException("root " + root + " in a group of one");
        }
    }

    @Override
    public void barrier() {
    }

    @Override
    public double allReduceSum(double value) {
        return value;
    }

    @Override
    public double allReduceMax(double value) {
        return value;
    }

    @Override
    public Collectives split(int color, int key) {
        return this;
    }

    @Override
    public void close() {
    }
}

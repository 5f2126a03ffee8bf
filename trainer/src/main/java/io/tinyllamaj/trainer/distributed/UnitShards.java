package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuTensor;
import io.tinyllamaj.model.ParameterLayout;
import io.tinyllamaj.model.UnitParameters;

import java.util.Arrays;

/**
 * Full sharding's side of {@link UnitParameters}: this rank keeps its range ({@link Shard#of} over
 * the shard group) of the masters and gradients; a unit is gathered into a unit buffer before
 * use and its gradient summed onto its owners right after. With contiguous ownership a unit
 * is held by one or a few ranks, so the gather is one broadcast per owner of a piece and the
 * reduction one reduce per owner (together the volume of an all-gather and a reduce-scatter).
 *
 * <p>Buffers: with {@code reshardAfterForward} two unit buffers of the largest unit, reused in
 * turn (a block's forward reads the next block's input norm, so two units are held at once);
 * without, one buffer per unit, kept from the forward to the backward. A buffer still holding
 * a unit (and no update since) is not gathered again: after the forward the last block and the
 * head are resident, so the backward gathers blocks L-1..1, and the embedding's backward reads
 * no parameters. One more unit-sized buffer takes each unit's gradient.
 */
final class UnitShards implements UnitParameters {

    private final Collectives group;
    private final Backend backend;
    private final ParameterLayout layout;
    private final boolean bf16Reduce;
    private final long[] owners; // owners[r] = where rank r's range starts; owners[size] = total
    private final Tensor[] buffers;
    private final int[] holds;   // the unit in each buffer, -1 none
    private final boolean[] busy;
    private final long[] lastUse;
    private final Tensor gradient;
    private long clock;

    UnitShards(Collectives group, Backend backend, ParameterLayout layout, boolean reshardAfterForward, boolean bf16Reduce) {
        this.group = group;
        this.backend = backend;
        this.layout = layout;
        this.bf16Reduce = bf16Reduce;
        int size = group.size();
        owners = new long[size + 1];
        for (int r = 0; r < size; r++) {
            owners[r] = Shard.of(layout.total(), r, size).offset();
        }
        owners[size] = layout.total();
        int units = layout.units();
        long largest = largestUnit(layout);
        buffers = new Tensor[reshardAfterForward ? 2 : units];
        for (int i = 0; i < buffers.length; i++) {
            buffers[i] = backend.allocate(reshardAfterForward ? largest : unitLength(i));
        }
        holds = new int[buffers.length];
        Arrays.fill(holds, -1);
        busy = new boolean[buffers.length];
        lastUse = new long[buffers.length];
        gradient = backend.allocate(largest);
    }

    static long largestUnit(ParameterLayout layout) {
        long largest = 0;
        for (int u = 0; u < layout.units(); u++) {
            largest = Math.max(largest, layout.unitEnd(u) - layout.unitStart(u));
        }
        return largest;
    }

    private long unitLength(int unit) {
        return layout.unitEnd(unit) - layout.unitStart(unit);
    }

    /** Bytes of the unit buffers: the gathered parameters and the unit gradient. */
    long bytes() {
        long sum = backend.bytes(gradient);
        for (Tensor b : buffers) {
            sum += backend.bytes(b);
        }
        return sum;
    }

    @Override
    public Tensor acquire(int unit, Tensor own) {
        int slot = -1;
        for (int i = 0; i < buffers.length; i++) {
            if (holds[i] == unit) {
                slot = i;
            }
        }
        if (slot < 0) {
            slot = buffers.length == layout.units() ? unit : leastRecentlyUsedFree();
            Tensor into = buffers[slot].slice(0, unitLength(unit));
            holds[slot] = -1;
            long start = layout.unitStart(unit);
            forEachPiece(unit, (root, from, length) -> {
                Tensor piece = into.slice(from - start, length);
                if (root == group.rank()) {
                    backend.copy(piece, own.slice(from - owners[root], length));
                }
                group.broadcast(piece, root);
            });
            holds[slot] = unit;
        }
        busy[slot] = true;
        lastUse[slot] = ++clock;
        return buffers[slot].slice(0, unitLength(unit));
    }

    private int leastRecentlyUsedFree() {
        int best = -1;
        for (int i = 0; i < buffers.length; i++) {
            if (!busy[i] && (best < 0 || lastUse[i] < lastUse[best])) {
                best = i;
            }
        }
        if (best < 0) {
            throw new IllegalStateException("both unit buffers are in use");
        }
        return best;
    }

    @Override
    public void release(int unit) {
        for (int i = 0; i < buffers.length; i++) {
            if (holds[i] == unit) {
                busy[i] = false;
            }
        }
    }

    @Override
    public Tensor gradient(int unit) {
        return gradient.slice(0, unitLength(unit));
    }

    @Override
    public void reduceGradient(int unit, Tensor own, boolean accumulate) {
        long start = layout.unitStart(unit);
        forEachPiece(unit, (root, from, length) -> {
            Tensor piece = gradient.slice(from - start, length);
            if (bf16Reduce) {
                roundToBf16(piece);
            }
            group.reduceSum(piece, root);
            if (root == group.rank()) {
                Tensor mine = own.slice(from - owners[root], length);
                if (accumulate) {
                    backend.accumulate(mine, piece);
                } else {
                    backend.copy(mine, piece);
                }
            }
        });
    }

    @Override
    public void parametersChanged() {
        Arrays.fill(holds, -1);
        Arrays.fill(busy, false);
    }

    private interface Piece {
        void accept(int root, long from, long length);
    }

    /** The parts of the unit's range by owner, in rank order. */
    private void forEachPiece(int unit, Piece body) {
        long start = layout.unitStart(unit), end = layout.unitEnd(unit);
        for (int r = 0; r < group.size(); r++) {
            long from = Math.max(start, owners[r]), to = Math.min(end, owners[r + 1]);
            if (from < to) {
                body.accept(r, from, to - from);
            }
        }
    }

    /**
     * bf16 reduction on the CPU: each value is rounded to bf16 (nearest, ties to even) before the
     * sum, as a bf16 reduction's inputs are; the sum itself is taken in fp32.
     */
    static void roundToBf16(Tensor t) {
        if (!(t instanceof CpuTensor cpu)) {
            throw new IllegalArgumentException("distributed.reduce_dtype bf16 rounds CPU tensors only");
        }
        float[] data = cpu.data();
        int from = cpu.offset(), to = from + cpu.length32();
        for (int i = from; i < to; i++) {
            int bits = Float.floatToRawIntBits(data[i]);
            if ((bits & 0x7f800000) != 0x7f800000) { // NaN and infinity stay as they are
                bits += 0x7fff + ((bits >>> 16) & 1);
            }
            data[i] = Float.intBitsToFloat(bits & 0xffff0000);
        }
    }
}

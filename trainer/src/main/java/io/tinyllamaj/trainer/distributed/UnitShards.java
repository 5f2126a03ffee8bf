package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuTensor;
import io.tinyllamaj.model.ParameterLayout;
import io.tinyllamaj.model.UnitParameters;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Full sharding's side of {@link UnitParameters}: this rank keeps its range ({@link Shard#of} over
 * the shard group) of the masters and gradients; a unit is gathered into a unit buffer before
 * use and its gradient summed onto its owners right after. With contiguous ownership a unit
 * is held by one or a few ranks, so the gather is one broadcast per owner of a piece and the
 * reduction one reduce per owner (together the volume of an all-gather and a reduce-scatter).
 *
 * <p>Overlap: the gathers and reductions are started collectives ({@link Collectives.Pending}).
 * A {@link #prefetch} starts the next unit's gather while the current unit computes, and
 * {@link #acquire} completes it; a unit's reduction runs on while the next unit's backward
 * computes into the other gradient buffer, and completes (adding into this rank's range) when
 * its buffer is needed again or when the gradients are read ({@link #completeGradients}).
 *
 * <p>Buffers: with {@code reshardAfterForward} three unit buffers of the largest unit, reused
 * least recently used first (a block's forward reads the next block's input norm, so two units
 * are held at once, and a third receives the prefetched one); without, one buffer per unit,
 * kept from the forward to the backward. A buffer still holding a unit (and no update since) is
 * not gathered again: after the forward the last two blocks and the head are resident, so the
 * backward gathers blocks L-2..1, and the embedding's backward reads no parameters. Two more
 * unit buffers take the gradients, unit u's in buffer u mod 2.
 *
 * <p>Where the matmuls read a copy of the weights ({@link Backend#matmulOperandsAreCopies}: the
 * GPU's bf16 copy), a unit is gathered in runs ({@link ParameterLayout#unitRuns}): the matmul
 * weights from each owner's copy into an operand buffer in that storage (2 bytes a value on the
 * GPU), the norms and the embedding from the fp32 masters into an fp32 buffer, each run packed
 * after the previous run of its kind, so a gathered unit reads exactly what an unsharded model
 * reads. The embedding unit (fp32 only, and as large as lm_head) then has a buffer of its own,
 * and the three shared ones hold a block's or the head's two parts: the operands of the largest
 * and the norms. Elsewhere (the CPU) one fp32 buffer per unit serves both, at the unit's own offsets.
 */
final class UnitShards implements UnitParameters {

    private static final int PREFETCHING = 3, GRADIENT_BUFFERS = 2;

    /** A run of a unit and where it lands in its kind's buffer. */
    private record Placed(long from, long to, boolean matmul, long at) {
    }

    private final Collectives group;
    private final Backend backend;
    private final ParameterLayout layout;
    private final boolean bf16Reduce;
    private final long[] owners; // owners[r] = where rank r's range starts; owners[size] = total
    private final Tensor[] buffers;        // the norms and the embedding (split), or whole units
    private final Tensor[] operandBuffers; // the matmul weights (split); the buffers themselves otherwise
    private final boolean split;
    private final int shared;             // buffers the units take least recently used first; a split unit 0 has the next one
    private final List<List<Placed>> placed = new ArrayList<>(); // by unit
    private final Map<ParameterLayout.Entry, Long> placement = new HashMap<>(); // where each entry lands in its buffer
    private final int[] holds;   // the unit in each buffer (gathered or being gathered), -1 none
    private final List<List<Collectives.Pending>> gathering; // each buffer's gather still in flight
    private final boolean[] busy; // acquired, or prefetched and not yet acquired
    private final long[] lastUse;
    private final Tensor[] gradients = new Tensor[GRADIENT_BUFFERS];
    // distributed.reduce_dtype bf16 where the backend stores bf16 (a GPU): each gradient buffer's bf16 copy, which the
    // reduction moves and sums; null otherwise (the CPU rounds the fp32 values in place)
    private final Tensor[] reduced = new Tensor[GRADIENT_BUFFERS];
    private final int[] writing = {-1, -1};     // the unit whose gradient the model is writing into each buffer
    private final Runnable[] reducing = new Runnable[GRADIENT_BUFFERS]; // completes the buffer's reduction in flight
    private final long[] reductionStarted = new long[GRADIENT_BUFFERS];
    private long clock;

    /** split: the matmuls read a copy of the weights ({@link Backend#matmulOperandsAreCopies}), so matmul weights are gathered from it. */
    UnitShards(Collectives group, Backend backend, ParameterLayout layout, boolean reshardAfterForward, boolean bf16Reduce, boolean split) {
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
        long largest = layout.largestUnit();
        this.split = split;
        place();
        boolean perUnit = !reshardAfterForward;
        shared = perUnit ? units : PREFETCHING;
        buffers = new Tensor[perUnit || !split ? shared : shared + 1];
        operandBuffers = new Tensor[buffers.length];
        gathering = new ArrayList<>();
        for (int i = 0; i < buffers.length; i++) {
            if (!split) {
                buffers[i] = backend.allocate(perUnit ? unitLength(i) : largest);
                operandBuffers[i] = buffers[i];
            } else {
                int unit = perUnit ? i : i == shared ? 0 : -1; // -1: any unit but the embedding
                buffers[i] = backend.allocate(Math.max(1, part(unit, false)));
                long operands = part(unit, true);
                operandBuffers[i] = operands == 0 ? buffers[i] : backend.allocateActivation(operands);
            }
            gathering.add(new ArrayList<>());
        }
        holds = new int[buffers.length];
        Arrays.fill(holds, -1);
        busy = new boolean[buffers.length];
        lastUse = new long[buffers.length];
        for (int i = 0; i < GRADIENT_BUFFERS; i++) {
            gradients[i] = backend.allocate(largest);
            if (bf16Reduce && !(gradients[i] instanceof CpuTensor)) {
                reduced[i] = backend.allocateActivation(largest);
            }
        }
    }

    /** Each unit's runs and each entry's place in its buffer: packed by kind when split, at the unit's own offsets otherwise. */
    private void place() {
        for (int u = 0; u < layout.units(); u++) {
            long start = layout.unitStart(u);
            List<Placed> runs = new ArrayList<>();
            long[] next = new long[2]; // the next free place in the masters' and the operands' buffer
            for (ParameterLayout.Run r : split ? layout.unitRuns(u) : List.of(new ParameterLayout.Run(start, layout.unitEnd(u), false))) {
                int kind = r.matmul() ? 1 : 0;
                runs.add(new Placed(r.from(), r.to(), r.matmul(), next[kind]));
                next[kind] += r.to() - r.from();
            }
            placed.add(runs);
        }
        for (ParameterLayout.Entry e : layout.stored()) {
            for (Placed p : placed.get(unitOf(e.offset()))) {
                if (e.offset() >= p.from() && e.offset() < p.to()) {
                    placement.put(e, p.at() + e.offset() - p.from());
                }
            }
        }
    }

    private int unitOf(long offset) {
        int unit = 0;
        while (unit + 1 < layout.units() && layout.unitStart(unit + 1) <= offset) {
            unit++;
        }
        return unit;
    }

    /** Values of one kind in unit {@code unit}; unit -1: the most in any unit but the embedding. */
    private long part(int unit, boolean matmul) {
        return unit >= 0 ? layout.unitPart(unit, matmul) : layout.largestPart(matmul);
    }

    private long unitLength(int unit) {
        return layout.unitEnd(unit) - layout.unitStart(unit);
    }

    /** Bytes of the unit buffers: the gathered parameters and the unit gradients. */
    long bytes() {
        long sum = 0;
        for (int i = 0; i < GRADIENT_BUFFERS; i++) {
            sum += backend.bytes(gradients[i]) + (reduced[i] != null ? backend.bytes(reduced[i]) : 0);
        }
        for (int i = 0; i < buffers.length; i++) {
            sum += backend.bytes(buffers[i]) + (operandBuffers[i] != buffers[i] ? backend.bytes(operandBuffers[i]) : 0);
        }
        return sum;
    }

    @Override
    public Gathered acquire(int unit, Tensor own, Tensor ownOperands) {
        int slot = holding(unit);
        if (slot < 0) {
            slot = ownBuffer(unit);
            if (slot < 0) {
                slot = leastRecentlyUsedFree();
            }
            startGather(slot, unit, own, ownOperands);
        }
        completeGather(slot);
        busy[slot] = true;
        lastUse[slot] = ++clock;
        Tensor masters = buffers[slot], operands = operandBuffers[slot];
        return new Gathered() {
            @Override
            public Tensor master(ParameterLayout.Entry entry) {
                return masters.slice(placement.get(entry), entry.size());
            }

            @Override
            public Tensor operand(ParameterLayout.Entry entry) {
                return operands.slice(placement.get(entry), entry.size());
            }
        };
    }

    /** The buffer that only this unit uses (one per unit, or a split embedding's), -1 for the shared ones. */
    private int ownBuffer(int unit) {
        if (shared == layout.units()) {
            return unit;
        }
        return split && unit == 0 ? shared : -1;
    }

    @Override
    public void prefetch(int unit, Tensor own, Tensor ownOperands) {
        if (holding(unit) >= 0) {
            return;
        }
        int slot = ownBuffer(unit);
        if (slot < 0) {
            slot = leastRecentlyUsed();
        }
        if (slot >= 0) { // with one buffer per unit, the unit's own is free: it holds nothing else
            startGather(slot, unit, own, ownOperands);
            busy[slot] = true; // reserved until acquired
            lastUse[slot] = ++clock;
        }
    }

    private int holding(int unit) {
        for (int i = 0; i < buffers.length; i++) {
            if (holds[i] == unit) {
                return i;
            }
        }
        return -1;
    }

    /** Each owner's piece by broadcast: the whole unit into the buffer, or (split) each run from its source into its buffer. */
    private void startGather(int slot, int unit, Tensor own, Tensor ownOperands) {
        if (split && ownOperands == own) {
            throw new IllegalArgumentException("the matmuls read a copy of the weights here, but the model passed its masters as the copy");
        }
        List<Collectives.Pending> pending = gathering.get(slot);
        for (Placed run : placed.get(unit)) {
            Tensor into = run.matmul() ? operandBuffers[slot] : buffers[slot];
            Tensor from = run.matmul() ? ownOperands : own;
            forEachPiece(run.from(), run.to(), (root, at, length) -> {
                Tensor piece = into.slice(run.at() + at - run.from(), length);
                if (root == group.rank()) {
                    backend.copy(piece, from.slice(at - owners[root], length));
                }
                pending.add(group.broadcastAsync(piece, root));
            });
        }
        holds[slot] = unit;
    }

    private void completeGather(int slot) {
        List<Collectives.Pending> pending = gathering.get(slot);
        for (Collectives.Pending p : pending) {
            p.complete();
        }
        pending.clear();
    }

    private int leastRecentlyUsedFree() {
        int best = leastRecentlyUsed();
        if (best < 0) {
            throw new IllegalStateException("every unit buffer is in use");
        }
        return best;
    }

    /** The free buffer used least recently, -1 when all are in use. */
    private int leastRecentlyUsed() {
        int best = -1;
        for (int i = 0; i < shared; i++) {
            if (!busy[i] && (best < 0 || lastUse[i] < lastUse[best])) {
                best = i;
            }
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
        int slot = unit % GRADIENT_BUFFERS;
        if (writing[slot] != unit) {
            completeReduction(slot);
            writing[slot] = unit;
        }
        return gradients[slot].slice(0, unitLength(unit));
    }

    @Override
    public void reduceGradient(int unit, Tensor own, boolean accumulate) {
        int slot = unit % GRADIENT_BUFFERS;
        if (writing[slot] != unit) {
            throw new IllegalStateException("unit " + unit + "'s gradient was not written through gradient(" + unit + ")");
        }
        writing[slot] = -1;
        Tensor gradient = gradients[slot];
        long start = layout.unitStart(unit);
        List<Collectives.Pending> pending = new ArrayList<>();
        List<Runnable> intoRange = new ArrayList<>();
        forEachPiece(layout.unitStart(unit), layout.unitEnd(unit), (root, from, length) -> {
            Tensor piece = gradient.slice(from - start, length);
            // bf16 storage: rounded into the copy, which the reduction moves and sums
            Tensor sent = reduced[slot] != null ? reduced[slot].slice(from - start, length) : piece;
            if (sent != piece) {
                backend.copy(sent, piece);
            } else if (bf16Reduce) {
                roundToBf16(piece);
            }
            pending.add(group.reduceSumAsync(sent, root));
            if (root == group.rank()) {
                Tensor mine = own.slice(from - owners[root], length);
                intoRange.add(() -> { // widened where the sum is bf16
                    if (accumulate) {
                        backend.accumulate(mine, sent);
                    } else {
                        backend.copy(mine, sent);
                    }
                });
            }
        });
        reducing[slot] = () -> {
            pending.forEach(Collectives.Pending::complete);
            intoRange.forEach(Runnable::run);
        };
        reductionStarted[slot] = ++clock;
    }

    private void completeReduction(int slot) {
        Runnable complete = reducing[slot];
        if (complete != null) {
            reducing[slot] = null;
            complete.run();
        }
    }

    @Override
    public void completeGradients() {
        // oldest first, as they were started
        boolean firstIsOlder = reductionStarted[0] <= reductionStarted[1];
        completeReduction(firstIsOlder ? 0 : 1);
        completeReduction(firstIsOlder ? 1 : 0);
    }

    @Override
    public void parametersChanged() {
        for (int i = 0; i < buffers.length; i++) {
            completeGather(i); // a gather in flight must still finish on every rank; its values are stale now
        }
        Arrays.fill(holds, -1);
        Arrays.fill(busy, false);
    }

    private interface Piece {
        void accept(int root, long from, long length);
    }

    /** The parts of the range [start, end) by owner, in rank order. */
    private void forEachPiece(long start, long end, Piece body) {
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

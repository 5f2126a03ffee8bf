package io.tinyllamaj.model;

import io.tinyllamaj.kernels.Tensor;

/**
 * Where a sharded model gets the parameters of each unit ({@link ParameterLayout#units}) and
 * hands each unit's gradient, so the model itself knows nothing of ranks. The model calls it
 * at unit boundaries, in this order for one micro-batch of L blocks:
 * <pre>
 *   forward:  acquire(0), acquire(1), prefetch(2), release(0),
 *             block l = 0..L-1: acquire(l+2), prefetch(l+3) (up to L+1), release(l+1)
 *             (a block's forward also reads the next block's input norm, so two units are held at once)
 *   backward: head: gradient(L+1) written, reduceGradient(L+1), release(L+1)
 *             blocks L..1: acquire(u), prefetch(u-1) (down to 1), gradient(u) written, reduceGradient(u), release(u)
 *             embedding: gradient(0) written, reduceGradient(0)   (its backward reads no parameters)
 * </pre>
 * {@link #prefetch} lets an implementation start the next unit's gather while this one computes,
 * and {@link #reduceGradient} may finish after it returns: {@link #completeGradients} is called
 * before this rank's range of the gradients is read.
 * An unsharded model has none and reads its whole buffers directly.
 */
public interface UnitParameters {

    /**
     * A unit as the model reads it: {@link #master} for the entries read as they are (the norms,
     * the embedding), {@link #operand} for the matmul weights as the matmuls read them. Where the
     * matmuls read the masters themselves (the CPU) both come from one fp32 buffer; on a GPU the
     * operands are bf16, in a buffer of their own.
     */
    interface Gathered {
        /** A norm or the embedding of this unit. */
        Tensor master(ParameterLayout.Entry entry);

        /** A matmul weight of this unit. */
        Tensor operand(ParameterLayout.Entry entry);
    }

    /**
     * Unit {@code unit}'s parameters, readable until {@link #release}. {@code own} is this rank's
     * range of the masters, {@code ownOperands} the same range as the matmuls read it (the
     * backend's {@code matmulOperand} of {@code own}: {@code own} itself on the CPU).
     */
    Gathered acquire(int unit, Tensor own, Tensor ownOperands);

    /** The model will {@link #acquire} {@code unit} next (after the units it holds): a hint to start gathering it now. */
    default void prefetch(int unit, Tensor own, Tensor ownOperands) {
    }

    /** The model is done reading the unit's parameters for now. */
    void release(int unit);

    /** A tensor over the unit's range that receives one micro-batch's gradient (written, not accumulated). */
    Tensor gradient(int unit);

    /**
     * {@link #gradient}(unit) is complete: sum it over the ranks into each owner's range of the
     * gradients; {@code own} is this rank's range, added to ({@code accumulate}) or overwritten.
     */
    void reduceGradient(int unit, Tensor own, boolean accumulate);

    /** Every {@link #reduceGradient} so far has reached this rank's range. */
    default void completeGradients() {
    }

    /** This rank's range of the masters was written: gathered copies are stale. */
    void parametersChanged();
}

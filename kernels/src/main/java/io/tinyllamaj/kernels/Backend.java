package io.tinyllamaj.kernels;

/**
 * The ops a Llama forward and backward pass needs, in fp32 semantics. Layouts follow PyTorch:
 * a linear layer's weight is {@code [out, in]} row-major, activations are {@code [rows, features]}.
 *
 * <p>Gradient conventions, chosen so one residual-gradient buffer flows through the blocks:
 * parameter gradients always accumulate ({@code +=}); matmul, attention and SwiGLU input
 * gradients overwrite; RMSNorm input gradients accumulate (the residual path adds to them).
 *
 * <p>Token ids come as host {@code int[]}: they are tiny next to activations, and a device
 * backend copies them into its own staging buffer.
 */
public interface Backend extends AutoCloseable {

    String name();

    // ---- memory ----

    /** A new zero-filled tensor. */
    Tensor allocate(long length);

    /**
     * The most bytes this backend's tensors can ever occupy: the JVM heap's limit on the CPU, the
     * device's memory on CUDA. A model larger than this cannot load, so it is refused before
     * anything is built for it.
     */
    long memoryCapacity();

    /**
     * A new zero-filled tensor for an activation that a step keeps or passes between ops (matmul
     * inputs and outputs, q/k/v, attention and SwiGLU outputs, their gradients). A backend may
     * store it in reduced precision (the CUDA backend: bf16, as PyTorch's autocast keeps these
     * tensors), so every value written to it is rounded; sums inside the ops stay fp32. The CPU
     * backend keeps fp32.
     */
    default Tensor allocateActivation(long length) {
        return allocate(length);
    }

    /**
     * Gives a tensor's memory back to the backend before it closes: a whole tensor from
     * {@link #allocate} or {@link #allocateActivation} (not a slice), never used again. A device
     * backend reuses it for later tensors; the CPU backend leaves it to the garbage collector.
     */
    default void release(Tensor t) {
    }

    /**
     * Bytes of storage behind {@code t}: its length times the bytes of one of its values (4 for
     * fp32; 2 for an {@link #allocateActivation activation} the backend keeps in bf16). What a
     * memory account adds up, so that it counts what was allocated rather than a formula.
     */
    default long bytes(Tensor t) {
        return t.length() * Float.BYTES;
    }

    /**
     * Bytes the backend holds beyond {@code tensorBytes}, the caller's count ({@link #bytes}) of
     * every tensor it still uses: scratch buffers, staging, allocation padding. The CPU backend
     * keeps nothing between ops (its scratch is garbage once an op returns): 0.
     */
    default long workspaceBytes(long tensorBytes) {
        return 0;
    }

    void upload(Tensor dst, float[] src, int srcOffset, int length);

    void download(Tensor src, float[] dst, int dstOffset, int length);

    default float[] download(Tensor src) {
        float[] values = new float[Math.toIntExact(src.length())];
        download(src, values, 0, values.length);
        return values;
    }

    void fill(Tensor t, float value);

    /** dst = src, of the same length; between storages (the CUDA backend's fp32 and bf16) rounded to nearest even or widened. */
    void copy(Tensor dst, Tensor src);

    /** dst += src; src may be an {@link #allocateActivation activation} (a sub-layer's output), dst may not. */
    void accumulate(Tensor dst, Tensor src);

    /** t *= factor */
    void scale(Tensor t, float factor);

    // ---- matmul ----

    /**
     * Whether a device backend's matmuls time their algorithms on each new shape's first call
     * (speed only: never a result); returns the setting it replaces. Off for work whose shapes
     * change from batch to batch, such as scoring tasks between training steps. The CPU has
     * nothing to tune.
     */
    default boolean matmulTuning(boolean on) {
        return false;
    }

    /**
     * {@code weight} as this backend's matmuls read it, for a weight that several matmuls in a row
     * read (lm_head over its logit chunks): the CUDA backend casts an fp32 weight to bf16 once, into
     * {@code into} when that is a bf16 tensor large enough (else into a new one), where each matmul
     * would cast it again; the CPU reads fp32 weights as they are and returns the weight itself.
     * Passing the result to the matmuls gives the same bits as passing the weight.
     */
    default Tensor matmulOperand(Tensor weight, Tensor into) {
        return weight;
    }

    /**
     * Whether {@link #matmulOperand} makes a copy in another storage (the CUDA backend's bf16)
     * rather than returning the weight: then a sharded model gathers its matmul weights from
     * each rank's copy, in that storage.
     */
    default boolean matmulOperandsAreCopies() {
        return false;
    }

    /** out[n, oc] = inp[n, c] . weight[oc, c]^T */
    void matmulForward(Tensor out, Tensor inp, Tensor weight, int n, int c, int oc);

    /**
     * dinp[n, c] = dout . weight (overwritten); dweight[oc, c] += dout^T . inp, or = when
     * {@code accumulate} is false (the first write of a step: no zeroing pass). Either of dinp and
     * dweight may be null (not computed; inp is then not read): a caller may take the two apart.
     */
    void matmulBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, int n, int c, int oc, boolean accumulate);

    default void matmulBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, int n, int c, int oc) {
        matmulBackward(dinp, dweight, dout, inp, weight, n, c, oc, true);
    }

    /**
     * {@link #matmulForward} for a projection inside the transformer blocks: where a backend trains
     * in FP8 (the CUDA backend with fp8 matmuls) these may run in FP8, and every other matmul
     * (lm_head) as {@link #matmulForward}.
     *
     * <p>The backward of the same {@code projection} and {@code layer} may reuse what this forward
     * measured of {@code weight} and {@code inp} (FP8's per-tensor amax): between the two the caller
     * leaves the weight with the values this forward read, and the input too unless
     * {@link #blockMatmulKeepsInput} says the backward does not read it (what the caller does not
     * keep, it recomputes bit for bit). A backward whose weight or input sits at another address
     * measures again.
     */
    default void blockMatmulForward(Projection projection, int layer, Tensor out, Tensor inp, Tensor weight, int n, int c, int oc) {
        matmulForward(out, inp, weight, n, c, oc);
    }

    /**
     * Whether {@link #blockMatmulBackward} of {@code projection} at these sizes takes its input
     * from a copy that the forward of the same projection and layer kept (the CUDA backend's
     * fp8-mixed keeps the FP8 transposed input), so that it does not read {@code inp}: the caller
     * then need not keep or recompute the input's values for the backward, as long as it passes the
     * same tensor.
     */
    default boolean blockMatmulKeepsInput(Projection projection, int n, int c, int oc) {
        return false;
    }

    /**
     * {@link #matmulBackward} for a projection inside the transformer blocks; see
     * {@link #blockMatmulForward}. Only where {@link #blockMatmulKeepsInput} is false may the
     * caller take it apart into a call with dweight null and one with dinp null.
     */
    default void blockMatmulBackward(Projection projection, int layer, Tensor dinp, Tensor dweight, Tensor dout, Tensor inp,
                                     Tensor weight, int n, int c, int oc, boolean accumulate) {
        matmulBackward(dinp, dweight, dout, inp, weight, n, c, oc, accumulate);
    }

    // ---- RMSNorm ----

    /** out = inp * rstd * weight per row, rstd[n] saved for the backward. */
    void rmsnormForward(Tensor out, Tensor rstd, Tensor inp, Tensor weight, int n, int c, float eps);

    /**
     * The residual add fused into the norm that follows it: residual = x + delta, then
     * out = rmsnorm(residual). One pass over the rows instead of three (copy, add, norm); a
     * backend without a fused kernel gets exactly those three. residual may be x itself.
     */
    default void residualRmsnormForward(Tensor residual, Tensor out, Tensor rstd, Tensor x, Tensor delta, Tensor weight,
                                        int n, int c, float eps) {
        if (residual != x) {
            copy(residual, x);
        }
        accumulate(residual, delta);
        rmsnormForward(out, rstd, residual, weight, n, c, eps);
    }

    /**
     * {@link #rmsnormForward} whose {@code out} is the input that the forward of {@code feeds} in
     * {@code layer} reads next; see {@link #swigluForward(Tensor, Tensor, int, int, Projection, int)}.
     */
    default void rmsnormForward(Tensor out, Tensor rstd, Tensor inp, Tensor weight, int n, int c, float eps, Projection feeds,
                                int layer) {
        rmsnormForward(out, rstd, inp, weight, n, c, eps);
    }

    /** {@link #residualRmsnormForward} whose {@code out} is the input that the forward of {@code feeds} in {@code layer} reads next. */
    default void residualRmsnormForward(Tensor residual, Tensor out, Tensor rstd, Tensor x, Tensor delta, Tensor weight, int n, int c,
                                        float eps, Projection feeds, int layer) {
        residualRmsnormForward(residual, out, rstd, x, delta, weight, n, c, eps);
    }

    /** dinp += ..., dweight += ... (dweight = ... when {@code accumulateWeight} is false). */
    void rmsnormBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, Tensor rstd, int n, int c,
                         boolean accumulateWeight);

    default void rmsnormBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, Tensor rstd, int n, int c) {
        rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, n, c, true);
    }

    /**
     * {@link #rmsnormBackward} that also leaves the new dinp in {@code dinpCopy}, an
     * {@link #allocateActivation activation} [n, c]: the residual stream's gradient as the next
     * matmul backward reads it (bf16 on the GPU, written by the norm's own kernel where the matmul
     * would otherwise cast dinp again). The default copies.
     */
    default void rmsnormBackwardAndCopy(Tensor dinp, Tensor dinpCopy, Tensor dweight, Tensor dout, Tensor inp, Tensor weight,
                                        Tensor rstd, int n, int c, boolean accumulateWeight) {
        rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, n, c, accumulateWeight);
        copy(dinpCopy, dinp);
    }

    /**
     * {@link #rmsnormBackwardAndCopy} whose {@code dinpCopy} is the output gradient that the backward
     * of {@code feeds} in {@code layer} reads next; see
     * {@link #swigluForward(Tensor, Tensor, int, int, Projection, int)}.
     */
    default void rmsnormBackwardAndCopy(Tensor dinp, Tensor dinpCopy, Tensor dweight, Tensor dout, Tensor inp, Tensor weight,
                                        Tensor rstd, int n, int c, boolean accumulateWeight, Projection feeds, int layer) {
        rmsnormBackwardAndCopy(dinp, dinpCopy, dweight, dout, inp, weight, rstd, n, c, accumulateWeight);
    }

    // ---- RoPE (rotate-half), in place on the q and k heads of fused qkv rows ----

    /**
     * qkv is {@code [b, t, (nHeads + 2 * nKvHeads) * headSize]}; the first nHeads + nKvHeads
     * heads of each row are rotated by the angle of position {@code startPos + t}.
     */
    void ropeForward(Tensor qkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta);

    /** The inverse rotation, applied to the gradient in place. */
    void ropeBackward(Tensor dqkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta);

    /**
     * {@link #ropeBackward} whose {@code dqkv} (all of it, the v heads too) is the output gradient
     * that the backward of {@code feeds} in {@code layer} reads next; see
     * {@link #swigluForward(Tensor, Tensor, int, int, Projection, int)}.
     */
    default void ropeBackward(Tensor dqkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta,
                              Projection feeds, int layer) {
        ropeBackward(dqkv, b, t, nHeads, nKvHeads, headSize, startPos, theta);
    }

    // ---- causal grouped-query attention ----

    /**
     * qkv {@code [b, tk, (nh + 2 nkv) hs]}; the queries are the last {@code tq} rows of each
     * batch (tq == tk in training, fewer with a KV cache). out {@code [b, tq, nh hs]},
     * lse {@code [b, nh, tq]} (log-sum-exp of the scaled scores, kept for the backward).
     */
    void attentionForward(Tensor out, Tensor lse, Tensor qkv, int b, int tq, int tk, int nh, int nkv, int hs);

    /** dqkv overwritten; tq == tk == t. */
    void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int b, int t, int nh, int nkv, int hs);

    /**
     * The backward of attention over RoPE-rotated q and k (positions from 0): dqkv, overwritten,
     * is the gradient with respect to qkv before the rotation. {@link #attentionBackward} then
     * {@link #ropeBackward(Tensor, int, int, int, int, int, int, float, Projection, int)}
     * ({@code feeds} and {@code layer} as there); a backend may turn dq and dk back as its
     * attention kernels store them, sparing RoPE's pass over dqkv.
     */
    default void attentionRopeBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int b, int t, int nh, int nkv,
                                       int hs, float theta, Projection feeds, int layer) {
        attentionBackward(dqkv, dout, qkv, out, lse, b, t, nh, nkv, hs);
        ropeBackward(dqkv, b, t, nh, nkv, hs, 0, theta, feeds, layer);
    }

    // ---- SwiGLU ----

    /** h {@code [n, 2 hidden]} holds gate then up; out {@code [n, hidden]} = silu(gate) * up. */
    void swigluForward(Tensor out, Tensor h, int n, int hidden);

    /** dh overwritten. */
    void swigluBackward(Tensor dh, Tensor dout, Tensor h, int n, int hidden);

    /**
     * {@link #swigluForward} whose {@code out} is the input that the forward of {@code feeds} in
     * {@code layer} reads next, with nothing written to it in between: a backend that runs that
     * projection in FP8 measures the input's amax as it writes, sparing the matmul a pass.
     */
    default void swigluForward(Tensor out, Tensor h, int n, int hidden, Projection feeds, int layer) {
        swigluForward(out, h, n, hidden);
    }

    /** {@link #swigluBackward} whose {@code dh} is the output gradient that the backward of {@code feeds} in {@code layer} reads next; see the forward's. */
    default void swigluBackward(Tensor dh, Tensor dout, Tensor h, int n, int hidden, Projection feeds, int layer) {
        swigluBackward(dh, dout, h, n, hidden);
    }

    /**
     * {@link #swigluBackward(Tensor, Tensor, Tensor, int, int, Projection, int)} that also writes
     * {@code out} = swiglu(h), the forward's output bit for bit, for a caller that did not keep it
     * and reads it next (the down projection's weight gradient): the CUDA backend does both in one
     * pass over h.
     */
    default void swigluBackwardRecomputing(Tensor dh, Tensor out, Tensor dout, Tensor h, int n, int hidden, Projection feeds,
                                           int layer) {
        swigluForward(out, h, n, hidden);
        swigluBackward(dh, dout, h, n, hidden, feeds, layer);
    }

    // ---- embedding ----

    void embeddingForward(Tensor out, Tensor table, int[] tokens, int n, int c);

    /** dtable[tokens[i]] += dout[i] */
    void embeddingBackward(Tensor dtable, Tensor dout, int[] tokens, int n, int c);

    // ---- softmax cross-entropy ----

    /**
     * losses[i] = -log softmax(logits[i])[targets[i]]; logits are replaced by their gradient
     * {@code (softmax - onehot) * gradScale}. A negative target is ignored: loss 0, gradient 0.
     */
    void crossEntropyForwardBackward(Tensor logits, Tensor losses, int[] targets, int n, int v, float gradScale);

    /**
     * {@link #crossEntropyForwardBackward} with PaLM's z-loss {@code zLoss * lse_i^2} (lse_i the
     * logsumexp of row i) added to each counted row's objective: the gradient gains
     * {@code 2 zLoss lse_i softmax * gradScale}; {@code logZ[i]} receives lse_i (0 where ignored),
     * losses stay the cross-entropy. A backend without the fused term refuses a non-zero zLoss.
     */
    default void crossEntropyForwardBackward(Tensor logits, Tensor losses, int[] targets, int n, int v, float gradScale,
                                             float zLoss, Tensor logZ) {
        if (zLoss != 0f) {
            throw new UnsupportedOperationException("z-loss is not implemented on this backend");
        }
        crossEntropyForwardBackward(logits, losses, targets, n, v, gradScale);
        fill(logZ, 0f);
    }

    /** losses only; logits unchanged. */
    default void crossEntropyForward(Tensor losses, Tensor logits, int[] targets, int n, int v) {
        crossEntropyForward(losses, null, logits, targets, n, v);
    }

    /**
     * losses, and with {@code margins} (null: none) margins[i] = max_j z_ij - z_i[y_i]: 0 when the
     * target has the largest logit, as greedy decoding would pick it (a tie for the largest counts);
     * 0 at ignored positions. Logits unchanged.
     */
    void crossEntropyForward(Tensor losses, Tensor margins, Tensor logits, int[] targets, int n, int v);

    // ---- optimizer ----

    /** Sum of squares of all values, accumulated in double. */
    double sumOfSquares(Tensor t);

    /**
     * One AdamW step over a flat parameter range, PyTorch semantics (decoupled decay,
     * bias-corrected moments); the gradient is multiplied by gradScale first (clipping).
     */
    void adamwUpdate(Tensor params, Tensor grads, Tensor m, Tensor v, AdamWStep step);

    /**
     * {@link #adamwUpdate}, then {@code operands} = {@link #matmulOperand matmulOperand}(params,
     * operands): the parameters as the matmuls read them, kept beside the fp32 masters. The CUDA
     * backend writes both in one pass (the bf16 rounding of each new value); on the CPU the
     * operands are the parameters themselves and nothing more happens.
     */
    default void adamwUpdateAndCopy(Tensor params, Tensor operands, Tensor grads, Tensor m, Tensor v, AdamWStep step) {
        adamwUpdate(params, grads, m, v, step);
        if (operands != params && matmulOperand(params, operands) != operands) {
            throw new IllegalArgumentException("operands cannot hold the parameters as matmuls read them");
        }
    }

    @Override
    default void close() {
    }
}

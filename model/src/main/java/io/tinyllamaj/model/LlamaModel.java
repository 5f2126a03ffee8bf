package io.tinyllamaj.model;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Projection;
import io.tinyllamaj.kernels.Tensor;

import java.util.List;

/**
 * The Llama architecture over a {@link Backend}: parameters and their gradients in one flat
 * buffer each, a forward pass and its hand-written backward (llm.c style). A block is
 * <pre>
 *   h   = x + attn_out(attention(rope(qkv(rmsnorm(x)))))
 *   out = h + down(swiglu(gate_up(rmsnorm(h))))
 * </pre>
 * and the model is embed, the blocks, a final RMSNorm and lm_head. Activations are sized for
 * one micro-batch shape and reallocated only when the shape changes.
 */
public final class LlamaModel {

    private final Backend backend;
    private final LlamaConfig config;
    private final ParameterLayout layout;
    private Tensor parameters;      // all of them, or this rank's range once sharded
    private ParameterViews weights; // the fp32 masters, as the norms and the embedding read them; null once sharded
    private UnitParameters units;   // null: unsharded, every unit read from the whole buffers
    private long ownOffset;         // where parameters (and gradients) start in the flat layout
    private final UnitParameters.Gathered[] held; // sharded: the units acquired now, by unit
    private Tensor gradients;
    private ParameterViews gradientViews;
    private boolean zeroPending; // zeroGradients() called and no backward has written the gradients since
    private Activations activations;
    private Tensor fullLogits;
    private Tensor decodeLogits;
    private final QueuedLosses queued; // the queued micro-batches' per-token losses, read by takeLosses()
    private Tensor scores;         // score(): losses and margins of each target set
    private Tensor operands;       // the parameters as matmuls read them (see operands()); null before the first forward
    private ParameterViews operandViews;
    private boolean operandsFresh; // operands hold the current parameters

    /** Refuses a shape the backend cannot hold before building anything for it. */
    public LlamaModel(Backend backend, LlamaConfig config) {
        MemoryBudget.requireModel(backend, config);
        this.backend = backend;
        this.config = config;
        this.layout = new ParameterLayout(config);
        this.parameters = backend.allocate(layout.total());
        this.weights = ParameterViews.of(layout, parameters, config.layers());
        this.held = new UnitParameters.Gathered[layout.units()];
        this.queued = new QueuedLosses(backend);
    }

    /**
     * Keeps only the range [offset, offset + length) of the parameters and of the gradients;
     * every forward and backward gets the other ranks' parts unit by unit from {@code units}
     * (full sharding). Called once, after the weights are set; {@link #parameters()} and
     * {@link #gradients()} are the range from then on.
     */
    public void shard(long offset, long length, UnitParameters units) {
        if (this.units != null) {
            throw new IllegalStateException("the model is sharded already");
        }
        if (config.tieEmbeddings()) { // lm_head would be read in two units
            throw new IllegalArgumentException("full sharding needs untied embeddings (model.tie_embeddings: false)");
        }
        if (offset < 0 || length < 0 || offset + length > layout.total()) {
            throw new IllegalArgumentException("range [" + offset + ", " + (offset + length) + ") is outside the "
                    + layout.total() + " parameters");
        }
        Tensor own = backend.allocate(length);
        backend.copy(own, parameters.slice(offset, length));
        backend.release(parameters);
        if (gradients != null) {
            backend.release(gradients);
            gradients = null;
            gradientViews = null;
        }
        if (operands != null && operands != parameters) {
            backend.release(operands);
        }
        operands = null;
        operandViews = null;
        operandsFresh = false;
        parameters = own;
        weights = null;
        ownOffset = offset;
        this.units = units;
        units.parametersChanged();
    }

    /** Where {@link #parameters()} starts in the flat layout: 0 unless {@link #shard sharded}. */
    public long parameterOffset() {
        return ownOffset;
    }

    /** Refuses, in one line, a shape whose parameters cannot fit the backend's memory; nothing is allocated. */
    public static void requireFits(Backend backend, LlamaConfig config) {
        MemoryBudget.requireModel(backend, config);
    }

    public Backend backend() {
        return backend;
    }

    public LlamaConfig config() {
        return config;
    }

    public ParameterLayout layout() {
        return layout;
    }

    /**
     * All parameters, flat, in {@link ParameterLayout} order. The caller may write them, so the
     * matmuls' copy of them is made again before the next forward (see {@link #adamwUpdate}).
     */
    public Tensor parameters() {
        changed();
        return parameters;
    }

    private void changed() {
        operandsFresh = false;
        if (units != null) {
            units.parametersChanged();
        }
    }

    /** The gradient buffer, allocated on first use; the same layout as {@link #parameters()}. */
    public Tensor gradients() {
        if (units != null) {
            units.completeGradients(); // the last units' reductions may still be in flight
        }
        if (zeroPending) { // read before a backward wrote them: the zeros zeroGradients() promised
            backend.fill(gradientBuffer(), 0f);
            zeroPending = false;
        }
        return gradientBuffer();
    }

    private Tensor gradientBuffer() {
        if (gradients == null) {
            gradients = backend.allocate(parameters.length());
            gradientViews = units == null ? ParameterViews.of(layout, gradients, config.layers()) : null;
        }
        return gradients;
    }

    /** The gradient buffer sliced per parameter. */
    private ParameterViews grads() {
        gradientBuffer();
        return gradientViews;
    }

    /** One parameter; the caller may write it (as {@link #parameters()}). */
    public Tensor parameter(String name) {
        if (units != null) {
            throw new IllegalStateException("parameter " + name + ": the model is sharded; this rank holds a range only");
        }
        operandsFresh = false;
        ParameterLayout.Entry e = layout.get(name);
        return parameters.slice(e.offset(), e.size());
    }

    /**
     * Bytes of what this model holds now, as its backend stores them ({@link Backend#bytes}). The
     * gradients and the activations count once they exist (after the first forward and backward);
     * the matmuls' copy only where it is one (the GPU's bf16 copy; the CPU's matmuls read the
     * masters); the logits buffers of {@link #logits} and {@link #decode}, the queued micro-batches'
     * loss rows and {@link #score}'s losses and margins count as activations.
     */
    public ModelMemory memory() {
        long copy = operands == null || operands == parameters ? 0 : backend.bytes(operands);
        long saved = activations == null ? 0 : activations.bytes(backend);
        for (Tensor logitsBuffer : new Tensor[] {fullLogits, decodeLogits, scores}) {
            saved += logitsBuffer == null ? 0 : backend.bytes(logitsBuffer);
        }
        saved += queued.bytes();
        return new ModelMemory(backend.bytes(parameters), copy, gradients == null ? 0 : backend.bytes(gradients), saved);
    }

    /**
     * The parameters as the matmuls read them: {@link #operands}, the bf16 copy of all parameters
     * on the GPU (made by the optimizer step in the same pass, or by a cast before a forward after
     * anything else could have written the parameters), the fp32 master on the CPU. Either way
     * the matmul gets the bits it got from casting the master itself.
     */
    private ParameterViews operands() {
        Tensor copy = operandCopy();
        if (operandViews == null) {
            operandViews = ParameterViews.of(layout, copy, config.layers());
        }
        return operandViews;
    }

    /** {@link #operands}' buffer (sharded: this rank's range as the matmuls read it), made again after the parameters were written. */
    private Tensor operandCopy() {
        if (!operandsFresh) {
            Tensor copy = backend.matmulOperand(parameters, operands);
            if (copy != operands) {
                operands = copy;
                operandViews = null;
            }
            operandsFresh = true;
        }
        return operands;
    }

    /**
     * One AdamW step over the parameters [offset, offset + m.length()) whose moments are m and v,
     * with the gradients as they are: all of them on one rank and under ddp, this rank's shard
     * under fsdp. Over all parameters it keeps the matmuls' copy current in the same pass (2 bytes
     * per parameter more written, where casting each weight before its forward and its backward
     * matmul moved 12); over a shard the copy is made again before the next forward, after the
     * caller has gathered the other ranks' updates into {@link #parameters()}.
     */
    public void adamwUpdate(long offset, Tensor m, Tensor v, AdamWStep step) {
        long length = m.length();
        offset -= ownOffset;
        if (offset < 0 || length != v.length() || offset + length > parameters.length()) {
            throw new IllegalArgumentException("AdamW moments of " + m.length() + " and " + v.length() + " values at offset "
                    + offset + " do not fit the " + parameters.length() + " parameters");
        }
        Tensor grads = gradients();
        if (units != null) {
            units.parametersChanged();
        }
        if (offset == 0 && length == parameters.length() && operands != null) {
            backend.adamwUpdateAndCopy(parameters, operands, grads, m, v, step);
            operandsFresh = true;
        } else {
            backend.adamwUpdate(parameters.slice(offset, length), grads.slice(offset, length), m, v, step);
            operandsFresh = false;
        }
    }

    /**
     * Gradients read as zeros from here on. No pass over the buffer: the next backward's first
     * write to each gradient overwrites it instead of adding (4.4 GB less traffic per TinyLlama
     * step); a read before that backward gets the zeros filled then.
     */
    public void zeroGradients() {
        zeroPending = true;
    }

    private Activations activations(int b, int t, boolean training) {
        if (t > config.maxSeqLen()) {
            throw new IllegalArgumentException("sequence length " + t + " exceeds the model's max_seq_len " + config.maxSeqLen());
        }
        if (activations == null || activations.b != b || activations.t != t || (training && activations.dResidual == null)) {
            if (activations != null) { // the old buffers go back before the new ones are taken
                activations.release(backend);
                activations = null;
            }
            activations = new Activations(backend, config, b, t, training);
        }
        return activations;
    }

    /**
     * Rows of logits computed at a time, at least: the lm_head matmul and the loss run over row
     * chunks so no [b * t, vocab] logits buffer exists in training (TinyLlama at 8 x 2048: 2 GB in
     * fp32). A multiple of the CPU GEMM's K block (256), so chunking does not change the order in
     * which the lm_head gradient is summed: the result is the same bits as one big matmul.
     */
    static final int LOGIT_ROWS = 1024;

    /**
     * The chunk for n rows: LOGIT_ROWS, or a quarter of n (rounded up to 256) when that is more,
     * so a large micro-batch takes at most 4 chunks. Each chunk re-reads the lm_head weight (and
     * its accumulated gradient): at TinyLlama's 8 x 2048 that is 4 passes instead of 16, for 0.4 GB
     * more of logits.
     */
    static int logitRows(int n) {
        int quarter = (n + 3) / 4;
        return Math.max(LOGIT_ROWS, (quarter + 255) / 256 * 256);
    }

    /** Logits [b * t, vocab] for tokens [b, t] (inference and tests); the tensor is reused by the next call. */
    public Tensor logits(int[] tokens, int b, int t) {
        Activations a = activations(b, t, activations != null && activations.dResidual != null);
        forward(a, tokens);
        int n = b * t;
        if (fullLogits == null || fullLogits.length() != (long) n * config.vocabSize()) {
            if (fullLogits != null) {
                backend.release(fullLogits);
            }
            fullLogits = backend.allocate((long) n * config.vocabSize());
        }
        backend.matmulForward(fullLogits, a.normFinal, headOperand(), n, config.dim(), config.vocabSize());
        leave(config.layers() + 1);
        return fullLogits;
    }

    /** {@link #score}'s result: for each target set, per position, the cross-entropy and the margin. */
    public record PositionScores(float[][] losses, float[][] margins) {
    }

    /**
     * One forward without gradients, scored against several target sets (a position may have to
     * predict different tokens for different requests): per set and position the cross-entropy
     * and the margin, how far the target's logit lies below the largest (0: greedy decoding picks
     * it); negative targets give 0 and 0. The logits are made a chunk at a time and each chunk is
     * read once per set, so no [b * t, vocab] buffer exists and nothing but 2 x sets x b x t floats
     * comes back.
     */
    public PositionScores score(int[] tokens, int[][] targets, int b, int t) {
        Activations a = activations(b, t, activations != null && activations.dResidual != null);
        forward(a, tokens);
        int n = b * t, sets = targets.length, vocab = config.vocabSize();
        for (int[] set : targets) {
            if (set.length != n) {
                throw new IllegalArgumentException("a target set has " + set.length + " positions, expected " + n);
            }
        }
        long needed = 2L * sets * n;
        if (scores == null || scores.length() < needed) {
            if (scores != null) {
                backend.release(scores);
            }
            scores = backend.allocate(needed);
        }
        forEachLogitChunk(a, headOperand(), (rows, logits, start) -> {
            for (int k = 0; k < sets; k++) {
                backend.crossEntropyForward(scores.slice((long) k * n + start, rows), scores.slice((long) (sets + k) * n + start, rows),
                        logits, rowsOf(targets[k], start, rows), rows, vocab);
            }
        });
        leave(config.layers() + 1);
        float[] all = backend.download(scores.slice(0, needed));
        float[][] losses = new float[sets][], margins = new float[sets][];
        for (int k = 0; k < sets; k++) {
            losses[k] = java.util.Arrays.copyOfRange(all, k * n, (k + 1) * n);
            margins[k] = java.util.Arrays.copyOfRange(all, (sets + k) * n, (sets + k + 1) * n);
        }
        return new PositionScores(losses, margins);
    }

    /** Per-position cross-entropy [b * t] without touching gradients; negative targets give 0. */
    public float[] losses(int[] tokens, int[] targets, int b, int t) {
        return score(tokens, new int[][] {targets}, b, t).losses()[0];
    }

    /**
     * Forward, loss and backward for one micro-batch; parameter gradients accumulate.
     * The gradient of the logits is scaled by {@code gradScale} (1 / tokens of the whole
     * optimizer step for a mean loss). Returns the sum of the per-token losses.
     */
    public double forwardBackward(int[] tokens, int[] targets, int b, int t, float gradScale) {
        return forwardBackward(tokens, targets, b, t, gradScale, 0f).crossEntropy();
    }

    /** Sums over the counted positions of a micro-batch: the cross-entropy, and the z-loss term zLoss * lse^2. */
    public record Losses(double crossEntropy, double zLoss) {
    }

    /**
     * {@link #forwardBackward(int[], int[], int, int, float)} with PaLM's z-loss of coefficient
     * {@code zLoss} added to the objective (0: none); returns both sums. Waits for the device; a
     * loop over an optimizer step's micro-batches uses {@link #queueForwardBackward} and
     * {@link #takeLosses} instead.
     */
    public Losses forwardBackward(int[] tokens, int[] targets, int b, int t, float gradScale, float zLoss) {
        if (queued.queued() > 0) { // their losses would be read here and lost
            throw new IllegalStateException(queued.queued() + " queued micro-batches have not had their losses read (takeLosses)");
        }
        queueForwardBackward(tokens, targets, b, t, gradScale, zLoss);
        return takeLosses().getFirst();
    }

    /**
     * Queues what {@link #forwardBackward(int[], int[], int, int, float, float)} does without waiting
     * for the device: the micro-batch's losses stay on the backend until {@link #takeLosses}, so the
     * host can draw and queue the next micro-batch while the GPU runs this one. The arrays may be
     * reused as soon as this returns.
     */
    public void queueForwardBackward(int[] tokens, int[] targets, int b, int t, float gradScale, float zLoss) {
        Activations a = activations(b, t, true);
        long n = (long) b * t;
        Tensor losses = queued.nextLosses(n, zLoss);
        Tensor logZ = zLoss != 0f ? queued.logZ(n) : null;
        forward(a, tokens);
        int dim = config.dim(), vocab = config.vocabSize();
        // The first backward after zeroGradients() overwrites each gradient on its first write; the
        // embedding's is a scatter-add (and lm_head's when tied to it), so it starts from zeros.
        boolean overwrite = zeroPending;
        zeroPending = false;
        if (overwrite && units == null) {
            backend.fill(grads().embed(), 0f);
        }
        // Sharded: each unit's gradient goes to a buffer of its own for this micro-batch, written, then
        // summed onto the owners' ranges (added there unless this is the step's first micro-batch).
        boolean write = overwrite || units != null;
        boolean tied = config.tieEmbeddings();
        // Per chunk: logits, then loss and its gradient in place, then the gradient through lm_head.
        Tensor head = headOperand();
        Tensor headGradient = units == null ? grads().lmHead() : unitGradient(config.layers() + 1, layout.get("lm_head"));
        forEachLogitChunk(a, head, (rows, logits, start) -> {
            if (zLoss != 0f) {
                backend.crossEntropyForwardBackward(logits, losses.slice(start, rows), rowsOf(targets, start, rows), rows, vocab,
                        gradScale, zLoss, logZ.slice(start, rows));
            } else {
                backend.crossEntropyForwardBackward(logits, losses.slice(start, rows), rowsOf(targets, start, rows), rows, vocab,
                        gradScale);
            }
            backend.matmulBackward(a.dNorm.slice((long) start * dim, (long) rows * dim), headGradient, logits,
                    a.normFinal.slice((long) start * dim, (long) rows * dim), head, rows, dim, vocab,
                    !(write && start == 0 && !tied));
        });
        backward(a, tokens, !write, !overwrite);
    }

    /**
     * The loss sums of the micro-batches queued since the last call, in the order they were queued;
     * waits for the device to finish them.
     */
    public List<Losses> takeLosses() {
        return queued.take();
    }

    /** The targets of one logit chunk; the array itself when one chunk covers it (no copy per step). */
    private static int[] rowsOf(int[] targets, int start, int rows) {
        return start == 0 && rows == targets.length ? targets : java.util.Arrays.copyOfRange(targets, start, start + rows);
    }

    private interface LogitChunk {
        void accept(int rows, Tensor logits, int start);
    }

    /** Computes the logits of logitRows(n) rows at a time into a.logits (lm_head's weight: head) and hands each chunk on. */
    private void forEachLogitChunk(Activations a, Tensor head, LogitChunk body) {
        int n = a.b * a.t, dim = config.dim(), vocab = config.vocabSize(), chunk = logitRows(n);
        for (int start = 0; start < n; start += chunk) {
            int rows = Math.min(chunk, n - start);
            Tensor logits = a.logits.slice(0, (long) rows * vocab);
            backend.matmulForward(logits, a.normFinal.slice((long) start * dim, (long) rows * dim), head, rows, dim, vocab);
            body.accept(rows, logits, start);
        }
    }

    /**
     * Appends {@code count} tokens to {@code cache} and returns the logits [vocab] of the last
     * one; the tensor is reused by the next call.
     */
    public Tensor decode(int[] tokens, int count, KvCache cache) {
        if (cache.length + count > cache.capacity) {
            throw new IllegalArgumentException("the KV cache holds " + cache.capacity + " positions; "
                    + (cache.length + count) + " were asked for");
        }
        Activations a = activations(1, count, false);
        forward(a, tokens, cache);
        cache.length += count;
        int last = count - 1, dim = config.dim();
        Tensor lastRow = a.residual[config.layers()].slice((long) last * dim, dim);
        backend.rmsnormForward(a.normFinal.slice(0, dim), a.rstdFinal.slice(0, 1), lastRow, finalNormWeight(), 1, dim, config.normEps());
        if (decodeLogits == null) {
            decodeLogits = backend.allocate(config.vocabSize()); // fp32: a training step's logit chunks may be bf16
        }
        backend.matmulForward(decodeLogits, a.normFinal.slice(0, dim), headOperand(), 1, dim, config.vocabSize());
        leave(config.layers() + 1);
        return decodeLogits;
    }

    /** The blocks and the final norm; the logits are left to the caller, a chunk at a time. */
    private void forward(Activations a, int[] tokens) {
        forward(a, tokens, null);
        LlamaConfig c = config;
        int n = a.b * a.t;
        backend.rmsnormForward(a.normFinal, a.rstdFinal, a.residual[c.layers()], finalNormWeight(), n, c.dim(), c.normEps());
    }

    /** The blocks; with a cache, q/k/v rows go into it at its current length and attention reads all of it. */
    private void forward(Activations a, int[] tokens, KvCache cache) {
        LlamaConfig c = config;
        int b = a.b, t = a.t, n = b * t, dim = c.dim();
        if (tokens.length < n) {
            throw new IllegalArgumentException("expected " + n + " tokens, got " + tokens.length);
        }
        int past = cache == null ? 0 : cache.length;
        enter(0);
        enter(1);
        prefetch(2);
        backend.embeddingForward(a.residual[0], embedWeight(), tokens, n, dim);
        backend.rmsnormForward(a.normAttn[0], a.rstdAttn[0], a.residual[0], attnNormWeight(0), n, dim, c.normEps(), Projection.QKV, 0);
        leave(0);
        for (int l = 0; l < c.layers(); l++) {
            enter(l + 2); // block l reads the next block's input norm; after the last block, the head comes next
            prefetch(l + 3);
            ParameterViews.Block op = operandBlock(l);
            Tensor x = a.residual[l];
            Tensor qkvNew = cache == null ? a.qkv[l] : cache.layers[l].slice((long) past * c.qkvDim(), (long) t * c.qkvDim());
            Tensor qkvAll = cache == null ? a.qkv[l] : cache.layers[l].slice(0, (long) (past + t) * c.qkvDim());
            backend.blockMatmulForward(Projection.QKV, l, qkvNew, a.normAttn[l], op.qkv(), n, dim, c.qkvDim());
            backend.ropeForward(qkvNew, b, t, c.heads(), c.kvHeads(), c.headSize(), past, c.ropeTheta());
            backend.attentionForward(a.attn[l], a.lse[l], qkvAll, b, t, past + t, c.heads(), c.kvHeads(), c.headSize());
            backend.blockMatmulForward(Projection.ATTENTION_OUTPUT, l, a.scratch, a.attn[l], op.attnOut(), n, dim, dim);
            backend.residualRmsnormForward(a.midResidual[l], a.normMlp[l], a.rstdMlp[l], x, a.scratch, mlpNormWeight(l), n, dim, c.normEps(),
                    Projection.GATE_UP, l);
            backend.blockMatmulForward(Projection.GATE_UP, l, a.gateUp[l], a.normMlp[l], op.gateUp(), n, dim, 2 * c.intermediate());
            backend.swigluForward(a.swiglu, a.gateUp[l], n, c.intermediate(), Projection.DOWN, l);
            backend.blockMatmulForward(Projection.DOWN, l, a.scratch, a.swiglu, op.down(), n, c.intermediate(), dim);
            if (l + 1 < c.layers()) {
                // the next block's input norm rides on this block's residual add
                backend.residualRmsnormForward(a.residual[l + 1], a.normAttn[l + 1], a.rstdAttn[l + 1], a.midResidual[l], a.scratch,
                        attnNormWeight(l + 1), n, dim, c.normEps(), Projection.QKV, l + 1);
            } else {
                // the final norm is the caller's: all rows for logits, the last one when decoding
                backend.copy(a.residual[l + 1], a.midResidual[l]);
                backend.accumulate(a.residual[l + 1], a.scratch);
            }
            leave(l + 1);
        }
    }

    /**
     * Expects d(loss)/d(normFinal) in a.dNorm. dResidual carries d(loss)/d(block output) down the blocks.
     * accumulate: the kernels add to the gradients they write; intoRange (sharded): the reduced unit
     * gradients add to this rank's range.
     */
    private void backward(Activations a, int[] tokens, boolean accumulate, boolean intoRange) {
        LlamaConfig c = config;
        int b = a.b, t = a.t, n = b * t, dim = c.dim(), hidden = c.intermediate();
        ParameterViews g = units == null ? grads() : null;
        int head = c.layers() + 1;
        backend.fill(a.dResidual, 0f);
        // Each norm's backward also leaves dResidual as the next matmul backward reads it (dResidualCopy).
        backend.rmsnormBackwardAndCopy(a.dResidual, a.dResidualCopy,
                g != null ? g.finalNorm() : unitGradient(head, layout.get("final_norm")), a.dNorm, a.residual[c.layers()],
                finalNormWeight(), a.rstdFinal, n, dim, accumulate, Projection.DOWN, c.layers() - 1);
        reduce(head, intoRange);
        leave(head);
        for (int l = c.layers() - 1; l >= 0; l--) {
            enter(l + 1);
            if (l > 0) {
                prefetch(l);
            }
            ParameterViews.Block op = operandBlock(l);
            ParameterViews.Block dw = g != null ? g.block(l) : ParameterViews.block(layout.block(l), units.gradient(l + 1),
                    layout.unitStart(l + 1));
            // MLP half: dResidual is d(out); it passes through the residual add unchanged.
            if (backend.blockMatmulKeepsInput(Projection.DOWN, n, hidden, dim)) {
                backend.blockMatmulBackward(Projection.DOWN, l, a.dSwiglu, dw.down(), a.dResidualCopy, a.swiglu, op.down(), n, hidden, dim,
                        accumulate);
                backend.swigluBackward(a.dGateUp, a.dSwiglu, a.gateUp[l], n, hidden, Projection.GATE_UP, l);
            } else {
                // The SwiGLU output was not saved (see Activations): down's input gradient first, then
                // SwiGLU's backward, which recomputes the output in the same pass over gate|up, then
                // down's weight gradient, which reads it.
                backend.blockMatmulBackward(Projection.DOWN, l, a.dSwiglu, null, a.dResidualCopy, null, op.down(), n, hidden, dim,
                        accumulate);
                backend.swigluBackwardRecomputing(a.dGateUp, a.swiglu, a.dSwiglu, a.gateUp[l], n, hidden, Projection.GATE_UP, l);
                backend.blockMatmulBackward(Projection.DOWN, l, null, dw.down(), a.dResidualCopy, a.swiglu, op.down(), n, hidden, dim,
                        accumulate);
            }
            backend.blockMatmulBackward(Projection.GATE_UP, l, a.dNorm, dw.gateUp(), a.dGateUp, a.normMlp[l], op.gateUp(), n, dim, 2 * hidden, accumulate);
            backend.rmsnormBackwardAndCopy(a.dResidual, a.dResidualCopy, dw.mlpNorm(), a.dNorm, a.midResidual[l], mlpNormWeight(l),
                    a.rstdMlp[l], n, dim, accumulate, Projection.ATTENTION_OUTPUT, l);
            // Attention half: dResidual is now d(h).
            backend.blockMatmulBackward(Projection.ATTENTION_OUTPUT, l, a.dAttn, dw.attnOut(), a.dResidualCopy, a.attn[l], op.attnOut(), n, dim,
                    dim, accumulate);
            backend.attentionRopeBackward(a.dQkv, a.dAttn, a.qkv[l], a.attn[l], a.lse[l], b, t, c.heads(), c.kvHeads(), c.headSize(),
                    c.ropeTheta(), Projection.QKV, l);
            backend.blockMatmulBackward(Projection.QKV, l, a.dNorm, dw.qkv(), a.dQkv, a.normAttn[l], op.qkv(), n, dim, c.qkvDim(), accumulate);
            if (l > 0) {
                backend.rmsnormBackwardAndCopy(a.dResidual, a.dResidualCopy, dw.attnNorm(), a.dNorm, a.residual[l], attnNormWeight(l),
                        a.rstdAttn[l], n, dim, accumulate, Projection.DOWN, l - 1);
            } else { // the embedding's backward reads dResidual itself
                backend.rmsnormBackward(a.dResidual, dw.attnNorm(), a.dNorm, a.residual[l], attnNormWeight(l), a.rstdAttn[l], n, dim,
                        accumulate);
            }
            reduce(l + 1, intoRange);
            leave(l + 1);
        }
        if (g != null) {
            backend.embeddingBackward(g.embed(), a.dResidual, tokens, n, dim);
        } else { // a scatter-add: the unit's buffer starts from zeros
            Tensor embed = unitGradient(0, layout.get("embed"));
            backend.fill(embed, 0f);
            backend.embeddingBackward(embed, a.dResidual, tokens, n, dim);
            reduce(0, intoRange);
        }
    }

    // ---- where each unit's tensors come from: the whole buffers, or the units acquired (sharded) ----

    private void enter(int unit) {
        if (units != null && held[unit] == null) {
            held[unit] = units.acquire(unit, parameters, operandCopy());
        }
    }

    /** Up to the head: the units past it are not the model's. */
    private void prefetch(int unit) {
        if (units != null && unit <= config.layers() + 1 && held[unit] == null) {
            units.prefetch(unit, parameters, operandCopy());
        }
    }

    private void leave(int unit) {
        if (units != null && held[unit] != null) {
            held[unit] = null;
            units.release(unit);
        }
    }

    private void reduce(int unit, boolean intoRange) {
        if (units != null) {
            units.reduceGradient(unit, gradientBuffer(), intoRange);
        }
    }

    private Tensor unitWeight(int unit, ParameterLayout.Entry entry) {
        return held[unit].master(entry);
    }

    private Tensor unitGradient(int unit, ParameterLayout.Entry entry) {
        return ParameterViews.slice(units.gradient(unit), entry, layout.unitStart(unit));
    }

    private Tensor embedWeight() {
        return units == null ? weights.embed() : unitWeight(0, layout.get("embed"));
    }

    private Tensor finalNormWeight() {
        return units == null ? weights.finalNorm() : unitWeight(config.layers() + 1, layout.get("final_norm"));
    }

    /** Sharded: the gathered operands (bf16 on a GPU, the gathered masters themselves on the CPU). */
    private Tensor headOperand() {
        if (units == null) {
            return operands().lmHead();
        }
        int head = config.layers() + 1;
        enter(head);
        return held[head].operand(layout.get("lm_head"));
    }

    /** The norms are the only block weights read as fp32 masters; the matmuls read {@link #operandBlock}. */
    private Tensor attnNormWeight(int l) {
        return units == null ? weights.block(l).attnNorm() : unitWeight(l + 1, layout.block(l).attnNorm());
    }

    private Tensor mlpNormWeight(int l) {
        return units == null ? weights.block(l).mlpNorm() : unitWeight(l + 1, layout.block(l).mlpNorm());
    }

    private ParameterViews.Block operandBlock(int l) {
        return units == null ? operands().block(l) : ParameterViews.block(layout.block(l), held[l + 1]::operand);
    }
}

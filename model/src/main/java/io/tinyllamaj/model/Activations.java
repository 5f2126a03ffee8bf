package io.tinyllamaj.model;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Projection;
import io.tinyllamaj.kernels.Tensor;

import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * Every buffer one forward and backward pass of b x t tokens needs, allocated once and reused
 * each step. Saved activations are per block; gradient scratch is shared across blocks because
 * the backward visits one block at a time. The SwiGLU output is not saved: SwiGLU's backward
 * recomputes it from gate|up as it reads them ({@link Backend#swigluBackwardRecomputing}: a few
 * more bytes written instead of n x intermediate values kept per block; at TinyLlama's 8 x 2048
 * that is 4 GB in bf16). Buffers that feed or leave a matmul,
 * attention or SwiGLU are {@link Backend#allocateActivation activations} (bf16 on the GPU), the
 * gradient into each norm (a matmul input's gradient) too, and in training the logits; the
 * residual stream and its gradient, norms' statistics and losses stay fp32. A sub-layer's output
 * (the attention and MLP projections) is a matmul output like any other, so an activation too: as
 * under autocast, it is rounded to bf16 and added to the fp32 residual stream. The norm outputs
 * (the q/k/v and gate/up projections' inputs) are saved per block only where the backward reads
 * them: a backend whose projection keeps its own copy of its input
 * ({@link Backend#blockMatmulKeepsInput}, fp8-mixed's FP8 transposed copies) lets the blocks share
 * one buffer.
 */
final class Activations {

    final int b;
    final int t;
    final Tensor[] residual;   // [layers + 1][n, dim]: the input of each block, and the last output
    final Tensor[] rstdAttn;   // [n]
    final Tensor[] normAttn;   // [n, dim]
    final Tensor[] qkv;        // [n, qkvDim], after RoPE
    final Tensor[] attn;       // [n, dim]
    final Tensor[] lse;        // [b, heads, t]
    final Tensor[] midResidual;// [n, dim]
    final Tensor[] rstdMlp;    // [n]
    final Tensor[] normMlp;    // [n, dim]
    final Tensor[] gateUp;     // [n, 2 intermediate]
    final Tensor swiglu;       // [n, intermediate]: the current block's (recomputed in the backward)
    final Tensor rstdFinal;    // [n]
    final Tensor normFinal;    // [n, dim]
    final Tensor logits;       // [min(n, logitRows(n)), vocab]: one chunk of logits, then its gradient
    final Tensor scratch;      // [n, dim]: a sub-layer's output before the residual add
    // gradients
    final Tensor dResidual;    // [n, dim]
    final Tensor dResidualCopy;// [n, dim]: dResidual as the matmul backwards read it (an activation: bf16 on the GPU)
    final Tensor dNorm;        // [n, dim]
    final Tensor dQkv;         // [n, qkvDim]
    final Tensor dAttn;        // [n, dim]
    final Tensor dGateUp;      // [n, 2 intermediate]
    final Tensor dSwiglu;      // [n, intermediate]

    /**
     * Where the buffers come from: the backend, or {@link #bytes}' counter. One constructor serves
     * both, so the size a planner computes is the size a step allocates.
     */
    interface Allocator {
        /** A tensor kept in fp32 on every backend. */
        Tensor fp32(long length);

        /** An {@link Backend#allocateActivation activation}: reduced precision where the backend stores it so. */
        Tensor activation(long length);
    }

    Activations(Backend backend, LlamaConfig c, int b, int t, boolean training) {
        this(allocator(backend), c, b, t, training,
                !backend.blockMatmulKeepsInput(Projection.QKV, b * t, c.dim(), c.qkvDim()),
                !backend.blockMatmulKeepsInput(Projection.GATE_UP, b * t, c.dim(), 2 * c.intermediate()));
    }

    private static Allocator allocator(Backend backend) {
        return new Allocator() {
            @Override
            public Tensor fp32(long length) {
                return backend.allocate(length);
            }

            @Override
            public Tensor activation(long length) {
                return backend.allocateActivation(length);
            }
        };
    }

    /** attnNormsRead, mlpNormsRead: whether the q/k/v and gate/up backwards read their inputs (then each block saves its own). */
    private Activations(Allocator allocate, LlamaConfig c, int b, int t, boolean training, boolean attnNormsRead,
                        boolean mlpNormsRead) {
        this.b = b;
        this.t = t;
        long n = (long) b * t;
        int layers = c.layers();
        residual = new Tensor[layers + 1];
        rstdAttn = new Tensor[layers];
        normAttn = new Tensor[layers];
        qkv = new Tensor[layers];
        attn = new Tensor[layers];
        lse = new Tensor[layers];
        midResidual = new Tensor[layers];
        rstdMlp = new Tensor[layers];
        normMlp = new Tensor[layers];
        gateUp = new Tensor[layers];
        // Inference needs no saved activations: every block reuses block 0's buffers.
        for (int l = 0; l < layers; l++) {
            boolean fresh = training || l == 0;
            residual[l] = fresh ? allocate.fp32(n * c.dim()) : residual[0];
            rstdAttn[l] = fresh ? allocate.fp32(n) : rstdAttn[0];
            normAttn[l] = l == 0 || training && attnNormsRead ? allocate.activation(n * c.dim()) : normAttn[0];
            qkv[l] = fresh ? allocate.activation(n * c.qkvDim()) : qkv[0];
            attn[l] = fresh ? allocate.activation(n * c.dim()) : attn[0];
            lse[l] = fresh ? allocate.fp32(n * c.heads()) : lse[0];
            midResidual[l] = fresh ? allocate.fp32(n * c.dim()) : midResidual[0];
            rstdMlp[l] = fresh ? allocate.fp32(n) : rstdMlp[0];
            normMlp[l] = l == 0 || training && mlpNormsRead ? allocate.activation(n * c.dim()) : normMlp[0];
            gateUp[l] = fresh ? allocate.activation(n * 2L * c.intermediate()) : gateUp[0];
        }
        swiglu = allocate.activation(n * c.intermediate());
        residual[layers] = training ? allocate.fp32(n * c.dim()) : residual[0];
        rstdFinal = allocate.fp32(n);
        normFinal = allocate.activation(n * c.dim()); // lm_head's input: bf16 on the GPU, the bits its cast gave
        // In training the logits are lm_head's output like any matmul's, so bf16 on the GPU, as under
        // autocast (the loss reads them in fp32); their gradient then reaches the matmul with no cast.
        long logitValues = Math.min(n, LlamaModel.logitRows(Math.toIntExact(n))) * c.vocabSize();
        logits = training ? allocate.activation(logitValues) : allocate.fp32(logitValues);
        scratch = allocate.activation(n * c.dim());
        dResidual = training ? allocate.fp32(n * c.dim()) : null;
        dResidualCopy = training ? allocate.activation(n * c.dim()) : null;
        dNorm = training ? allocate.activation(n * c.dim()) : null;
        dQkv = training ? allocate.activation(n * c.qkvDim()) : null;
        dAttn = training ? allocate.activation(n * c.dim()) : null;
        dGateUp = training ? allocate.activation(n * 2L * c.intermediate()) : null;
        dSwiglu = training ? allocate.activation(n * c.intermediate()) : null;
    }

    /**
     * Bytes of every buffer a pass of b x t tokens allocates ({@code training}: with the saved
     * activations and the gradient scratch), at {@code activationBytes} per activation value and 4
     * per fp32 value: what the constructor would take from a backend that stores activations so.
     */
    static long bytes(LlamaConfig c, int b, int t, boolean training, int activationBytes) {
        long[] total = {0};
        record Sized(long length) implements Tensor {
            @Override
            public Tensor slice(long offset, long length) {
                throw new UnsupportedOperationException("a size, not storage");
            }
        }
        new Activations(new Allocator() {
            @Override
            public Tensor fp32(long length) {
                total[0] += length * Float.BYTES;
                return new Sized(length);
            }

            @Override
            public Tensor activation(long length) {
                total[0] += length * activationBytes;
                return new Sized(length);
            }
        }, c, b, t, training, true, true);
        return total[0];
    }

    /** Bytes the backend holds for these buffers, each counted once (inference shares block 0's across blocks). */
    long bytes(Backend backend) {
        return distinct().stream().mapToLong(backend::bytes).sum();
    }

    /** Gives every buffer back to the backend (once each). */
    void release(Backend backend) {
        distinct().forEach(backend::release);
    }

    private Set<Tensor> distinct() {
        Set<Tensor> distinct = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Tensor[] perLayer : new Tensor[][]{residual, rstdAttn, normAttn, qkv, attn, lse, midResidual, rstdMlp, normMlp, gateUp}) {
            distinct.addAll(Arrays.asList(perLayer));
        }
        distinct.addAll(Arrays.asList(swiglu, rstdFinal, normFinal, logits, scratch,
                dResidual, dResidualCopy, dNorm, dQkv, dAttn, dGateUp, dSwiglu));
        distinct.remove(null);
        return distinct;
    }
}

package io.tinyllamaj.kernels.cuda;

/**
 * The matmuls, on cuBLASLt ({@link CublasLt}, column-major view): bf16 operands, fp32 accumulation,
 * fp32 or bf16 output. An fp32 operand is cast to bf16 first (elementwise.cu), into one of three
 * scratch buffers (weight, input, output gradient).
 */
final class Matmul implements AutoCloseable {

    private final Gpu gpu;
    private final ElementwiseKernels elementwise;
    private final CublasLt blas;
    private final Scratch[] operands = new Scratch[3];

    Matmul(Gpu gpu, ElementwiseKernels elementwise, boolean tuning) {
        this.gpu = gpu;
        this.elementwise = elementwise;
        this.blas = new CublasLt(gpu.driver(), gpu.arena().allocate(CublasLt.WORKSPACE_BYTES), elementwise::fingerprint, tuning);
        for (int i = 0; i < operands.length; i++) {
            operands[i] = new Scratch(gpu.arena());
        }
    }

    /** See {@link CublasLt#tuning(boolean)}. */
    boolean tuning(boolean on) {
        return blas.tuning(on);
    }

    /** The bf16 operand of a matmul: a bf16 tensor as it is, an fp32 one cast into scratch buffer {@code slot}; returns its address. */
    private long bf16(int slot, CudaTensor t, long length) {
        CudaBackend.checkLength(t, length);
        if (t.bf16()) {
            return t.address();
        }
        long scratch = operands[slot].atLeast(Math.max(length * 2, 256));
        elementwise.castBf16(scratch, t.address(), length);
        return scratch;
    }

    /** weight as the matmuls read it: itself when bf16, else cast into {@code into} (when a large enough bf16 tensor) or a new tensor. */
    CudaTensor operand(CudaTensor weight, CudaTensor into) {
        if (weight.bf16()) {
            return weight;
        }
        CudaTensor d = into;
        if (d == null || !d.bf16() || d.length() < weight.length()) {
            d = gpu.memory().allocate(weight.length(), true);
        }
        elementwise.castBf16(d.address(), weight.address(), weight.length());
        return d;
    }

    /** out[n, oc] = inp[n, c] . weight[oc, c]^T */
    void forward(CudaTensor out, CudaTensor inp, CudaTensor weight, int n, int c, int oc) {
        CudaBackend.checkLength(out, (long) n * oc);
        long w = bf16(0, weight, (long) oc * c);
        long x = bf16(1, inp, (long) n * c);
        // out^T [oc, n] = W [oc, c] (stored as col-major [c, oc], transposed) . inp^T [c, n]
        blas.matmul(1, 0, oc, n, c, w, c, x, c, out.address(), oc, false, out.bf16(), gpu.stream());
    }

    /** dinp[n, c] = dout . weight (when dinp is not null); dweight[oc, c] (+)= dout^T . inp (fp32). */
    void backward(CudaTensor dinp, CudaTensor dweight, CudaTensor dout, CudaTensor inp, CudaTensor weight, int n, int c, int oc,
                  boolean accumulate) {
        long dy = bf16(0, dout, (long) n * oc);
        if (dinp != null) {
            CudaBackend.checkLength(dinp, (long) n * c);
            long w = bf16(1, weight, (long) oc * c);
            // dinp^T [c, n] = W^T [c, oc] (W stored col-major [c, oc]) . dout^T [oc, n]
            blas.matmul(0, 0, c, n, oc, w, c, dy, oc, dinp.address(), c, false, dinp.bf16(), gpu.stream());
        }
        CudaBackend.checkLength(dweight, (long) oc * c);
        long x = bf16(2, inp, (long) n * c);
        // dW^T [c, oc] (+)= inp^T [c, n] . dout [n, oc] (dout stored col-major [oc, n], transposed)
        blas.matmul(0, 1, c, oc, n, x, c, dy, oc, dweight.address(), c, accumulate, false, gpu.stream());
    }

    @Override
    public void close() {
        blas.close();
    }
}

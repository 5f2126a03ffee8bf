package io.tinyllamaj.kernels.cuda;

/**
 * The matmuls, on cuBLASLt ({@link CublasLt}, column-major view): bf16 operands, fp32 accumulation,
 * fp32 or bf16 output. An fp32 operand is cast to bf16 first (elementwise.cu), into one of three
 * scratch buffers (weight, input, output gradient).
 *
 * <p>With FP8 on ({@link #forwardFp8}, {@link #backwardFp8}), each operand is quantized with a
 * scale from its own amax (current scaling, {@link Fp8Kernels}): weights and inputs to e4m3,
 * output gradients to e5m2. cuBLASLt's FP8 matmuls on Hopper take A transposed and B not, so the
 * input gradient reads a transposed copy of the weight, and the weight gradient transposed copies
 * of the input and of the output gradient, each written by the same cast pass as the operand
 * itself. The forward keeps the transposed weight and input for the backward of the same site (a
 * projection in a layer, named by the caller; {@link Fp8Sites}), so the backward casts only the
 * output gradient; a kernel that writes an operand just before its matmul (RMSNorm, SwiGLU) may
 * measure its amax on the way, sparing the amax pass. A site keeps its weight's e4m3 copies until
 * the weight is written ({@link #weightsWritten}), so the micro-batches after the first of an
 * optimizer step cast no weights.
 */
final class Matmul implements AutoCloseable {

    /** The per-tensor inverse scales, one fp32 each in {@link #scales}. */
    private static final int WEIGHT = 0, INPUT = 1, GRADIENT = 2;
    /** Bytes between two scales: cuBLASLt refuses an FP8 matmul whose scale pointer is only 4-byte aligned. */
    private static final long SCALE_STRIDE = 256;

    private final Gpu gpu;
    private final ElementwiseKernels elementwise;
    private final CublasLt blas;
    private final Scratch[] operands = new Scratch[3];
    private final Fp8Kernels fp8;
    /** FP8 copies: the weight, the input, the output gradient, each as it is [0..2] and transposed [3..5]. */
    private final Scratch[] fp8Operands = new Scratch[6];
    private final long scales;
    private final Fp8Sites sites;
    /** The amax of an operand the backward measures itself (its forward's is not known for it). */
    private final long scratchAmax;

    Matmul(Gpu gpu, ElementwiseKernels elementwise, boolean tuning) {
        this.gpu = gpu;
        this.elementwise = elementwise;
        this.blas = new CublasLt(gpu.driver(), gpu.arena().allocate(CublasLt.WORKSPACE_BYTES), elementwise::fingerprint, tuning);
        for (int i = 0; i < operands.length; i++) {
            operands[i] = new Scratch(gpu.arena());
        }
        for (int i = 0; i < fp8Operands.length; i++) {
            fp8Operands[i] = new Scratch(gpu.arena());
        }
        this.fp8 = new Fp8Kernels(gpu);
        this.scales = gpu.arena().allocate(3 * SCALE_STRIDE);
        this.sites = new Fp8Sites(gpu);
        this.scratchAmax = gpu.arena().allocate(Integer.BYTES);
    }

    /** See {@link Fp8Sites#fromProducer}. */
    long amaxFromProducer(int site, CudaTensor t, boolean gradient) {
        return sites.fromProducer(site, t, gradient);
    }

    /** See {@link Fp8Sites#written}. */
    void weightsWritten(CudaTensor t) {
        sites.written(t.address(), t.bytes());
    }

    /** See {@link Fp8Sites#allWritten}. */
    void allWeightsWritten() {
        sites.allWritten();
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
        if (dweight != null) {
            CudaBackend.checkLength(dweight, (long) oc * c);
            long x = bf16(2, inp, (long) n * c);
            // dW^T [c, oc] (+)= inp^T [c, n] . dout [n, oc] (dout stored col-major [oc, n], transposed)
            blas.matmul(0, 1, c, oc, n, x, c, dy, oc, dweight.address(), c, accumulate, false, gpu.stream());
        }
    }

    /**
     * Whether cuBLASLt's FP8 matmuls take these sizes: every leading dimension of an FP8 operand
     * (c, oc and n) a multiple of 16 elements. Other shapes (decoding one token, say) run in bf16.
     */
    static boolean fp8Fits(int n, int c, int oc) {
        return n % 16 == 0 && c % 16 == 0 && oc % 16 == 0;
    }

    private long scale(int which) {
        return scales + (long) which * SCALE_STRIDE;
    }

    /** The scratch buffer of {@code which}'s FP8 copy (as it is, or transposed), at least {@code bytes} long (one byte an element). */
    private long fp8Buffer(int which, boolean transposed, long bytes) {
        return fp8Operands[which + (transposed ? 3 : 0)].atLeast(Math.max(bytes, 256));
    }

    /**
     * {@link #forward} with both operands in e4m3; in bf16 where {@link #fp8Fits} says no. The
     * casts of weight and input also write their transposes, kept for {@code site}'s backward with
     * their scales; the weight's copies are cast only where the site does not hold them already.
     */
    void forwardFp8(int site, CudaTensor out, CudaTensor inp, CudaTensor weight, int n, int c, int oc) {
        boolean inputGiven = sites.producedFor(site, inp, false);
        if (!fp8Fits(n, c, oc)) {
            forward(out, inp, weight, n, c, oc);
            return;
        }
        CudaBackend.checkLength(out, (long) n * oc);
        Fp8Sites.Site s = sites.site(site);
        long w8 = s.keptWeightRows(Math.max((long) oc * c, 256)), x8 = fp8Buffer(INPUT, false, (long) n * c);
        long w8t = s.keptWeight(Math.max((long) oc * c, 256)), x8t = s.keptInput(Math.max((long) n * c, 256));
        if (!s.holds(weight, c, oc)) {
            fp8.quantize(bf16(0, weight, (long) oc * c), oc, c, Fp8Kernels.Format.E4M3, w8, w8t, s.weightScale(), s.weightAmax(), true);
            s.cast(weight, c, oc);
        }
        fp8.quantize(bf16(1, inp, (long) n * c), n, c, Fp8Kernels.Format.E4M3, x8, x8t, s.inputScale(), s.inputAmax(), !inputGiven);
        // an fp32 weight went through a scratch buffer: the backward cannot know it by address
        s.measured(new Fp8Sites.Measured(weight.bf16() ? weight.address() : 0, inp.address(), n, c, oc));
        // out^T [oc, n] = W [oc, c] (stored col-major [c, oc], transposed) . inp^T [c, n]
        blas.matmulFp8(oc, n, c, w8, CublasLt.CUDA_R_8F_E4M3, s.weightScale(), c, x8, CublasLt.CUDA_R_8F_E4M3, s.inputScale(), c,
                w8, out.address(), oc, false, out.bf16(), gpu.stream()); // C: any address but D's (beta 0)
    }

    /**
     * {@link #backward} with the output gradient in e5m2 (e4m3 with {@code e4m3Gradient}), weight
     * and input in e4m3; in bf16 where {@link #fp8Fits} says no. Where {@code site}'s forward read the same input tensor at the same
     * sizes, the weight gradient takes the transposed input that forward kept ({@code inp} is not
     * read); where it read the same weight, the input gradient takes the kept transposed weight.
     */
    void backwardFp8(int site, boolean e4m3Gradient, CudaTensor dinp, CudaTensor dweight, CudaTensor dout, CudaTensor inp,
                     CudaTensor weight, int n, int c, int oc, boolean accumulate) {
        boolean gradientGiven = sites.producedFor(site, dout, true);
        if (!fp8Fits(n, c, oc)) {
            backward(dinp, dweight, dout, inp, weight, n, c, oc, accumulate);
            return;
        }
        CudaBackend.checkLength(dweight, (long) oc * c);
        Fp8Sites.Site s = sites.site(site);
        Fp8Sites.Measured m = s.measured();
        boolean weightKept = m != null && weight.bf16() && m.weight() == weight.address() && m.c() == c && m.oc() == oc;
        boolean inputKept = m != null && m.input() == inp.address() && m.n() == n && m.c() == c;
        long dy8 = dinp != null ? fp8Buffer(GRADIENT, false, (long) n * oc) : 0, dy8t = fp8Buffer(GRADIENT, true, (long) n * oc);
        Fp8Kernels.Format gradientFormat = e4m3Gradient ? Fp8Kernels.Format.E4M3 : Fp8Kernels.Format.E5M2;
        int gradientType = e4m3Gradient ? CublasLt.CUDA_R_8F_E4M3 : CublasLt.CUDA_R_8F_E5M2;
        fp8.quantize(bf16(0, dout, (long) n * oc), n, oc, gradientFormat, dy8, dy8t, scale(GRADIENT), s.gradientAmax(),
                !gradientGiven);
        if (dinp != null) {
            CudaBackend.checkLength(dinp, (long) n * c);
            long w8t = s.keptWeight(0), wScale = s.weightScale();
            if (!weightKept) {
                w8t = fp8Buffer(WEIGHT, true, (long) oc * c);
                wScale = scale(WEIGHT);
                fp8.quantize(bf16(1, weight, (long) oc * c), oc, c, Fp8Kernels.Format.E4M3, 0, w8t, wScale, scratchAmax, true);
            }
            // dinp^T [c, n] = W^T [c, oc] (stored as w8t, row-major [c, oc] = col-major [oc, c], transposed) . dout^T [oc, n]
            blas.matmulFp8(c, n, oc, w8t, CublasLt.CUDA_R_8F_E4M3, wScale, oc, dy8, gradientType, scale(GRADIENT),
                    oc, w8t, dinp.address(), c, false, dinp.bf16(), gpu.stream());
        }
        long x8t = s.keptInput(0), xScale = s.inputScale();
        if (!inputKept) {
            x8t = fp8Buffer(INPUT, true, (long) n * c);
            xScale = scale(INPUT);
            fp8.quantize(bf16(2, inp, (long) n * c), n, c, Fp8Kernels.Format.E4M3, 0, x8t, xScale, scratchAmax, true);
        }
        // dW^T [c, oc] (+)= inp^T [c, n] (x8t: col-major [n, c], transposed) . dout [n, oc] (dy8t: col-major [n, oc]).
        // FP8 matmuls want D 16-byte aligned: there the product goes straight to dweight, added in
        // cuBLASLt's epilogue (C = D) when accumulating; elsewhere to a scratch buffer, then added or copied.
        boolean direct = (dweight.address() & 15) == 0;
        long d = direct ? dweight.address() : fp8Buffer(WEIGHT, false, (long) oc * c * Float.BYTES);
        blas.matmulFp8(c, oc, n, x8t, CublasLt.CUDA_R_8F_E4M3, xScale, n, dy8t, gradientType, scale(GRADIENT), n,
                direct ? d : x8t, d, c, direct && accumulate, false, gpu.stream());
        if (!direct && accumulate) {
            elementwise.accumulate(dweight.address(), d, (long) oc * c, false);
        } else if (!direct) {
            gpu.driver().memcpyDtoDAsync(dweight.address(), d, (long) oc * c * Float.BYTES, gpu.stream());
        }
    }

    @Override
    public void close() {
        blas.close();
    }
}

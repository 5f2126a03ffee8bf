package io.tinyllamaj.kernels.cpu;

/**
 * Linear layer without bias, PyTorch's {@code out = inp @ weight.T}.
 * inp [n, c], weight [oc, c], out [n, oc].
 * Forward:  out = inp . weight^T
 * Backward: dinp = dout . weight (overwritten), dweight += dout^T . inp.
 * All three are one strided GEMM; only the strides differ.
 */
final class Matmul {

    private final Gemm gemm = new Gemm();

    void forward(CpuTensor out, CpuTensor inp, CpuTensor weight, int n, int c, int oc) {
        // A = inp [n, c]; B(k, j) = weight[j, k]
        gemm.multiply(n, oc, c, inp.data(), inp.offset(), c, 1, weight.data(), weight.offset(), 1, c,
                out.data(), out.offset(), oc, false);
    }

    void backward(CpuTensor dinp, CpuTensor dweight, CpuTensor dout, CpuTensor inp, CpuTensor weight, int n, int c, int oc) {
        if (dinp != null) {
            // A = dout [n, oc]; B = weight [oc, c]
            gemm.multiply(n, c, oc, dout.data(), dout.offset(), oc, 1, weight.data(), weight.offset(), c, 1,
                    dinp.data(), dinp.offset(), c, false);
        }
        if (dweight != null) {
            // A(i, k) = dout[k, i] (oc x n); B = inp [n, c]
            gemm.multiply(oc, c, n, dout.data(), dout.offset(), 1, oc, inp.data(), inp.offset(), c, 1,
                    dweight.data(), dweight.offset(), c, true);
        }
    }
}

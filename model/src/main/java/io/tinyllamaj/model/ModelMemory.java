package io.tinyllamaj.model;

/**
 * Bytes of the tensors a model holds on its backend, by purpose: the fp32 master parameters, the
 * matmuls' copy of them (bf16 on the GPU; none on the CPU, whose matmuls read the masters), the
 * gradients, and the activations of the micro-batch shape in use. {@link LlamaModel#memory}
 * measures them from the tensors allocated; {@link #planned} computes them for a shape, through
 * the code that allocates them, so a planner and a running model cannot disagree.
 */
public record ModelMemory(long parameters, long operands, long gradients, long activations) {

    /** How a backend stores what is not fp32: bytes per activation value and per value of the matmuls' parameter copy. */
    public record Storage(int activationBytes, int operandBytes) {
        /** The CPU backend: fp32 activations; the matmuls read the fp32 masters, no copy. */
        public static final Storage CPU = new Storage(Float.BYTES, 0);
        /** bf16-mixed on the GPU: bf16 activations and a bf16 copy of every parameter. */
        public static final Storage BF16_MIXED = new Storage(2, 2);
    }

    /**
     * What a model of shape {@code c} holds once it has trained on micro-batches of b x t tokens,
     * {@code microBatches} of them an optimizer step (each queues a row of b x t fp32 losses until
     * the step reads them).
     */
    public static ModelMemory planned(LlamaConfig c, int b, int t, int microBatches, Storage storage) {
        long values = new ParameterLayout(c).total();
        long lossRows = (long) microBatches * b * t * Float.BYTES;
        return new ModelMemory(values * Float.BYTES, values * storage.operandBytes(), values * Float.BYTES,
                Activations.bytes(c, b, t, true, storage.activationBytes()) + lossRows);
    }
}

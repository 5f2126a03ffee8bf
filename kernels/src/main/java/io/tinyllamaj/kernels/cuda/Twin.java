package io.tinyllamaj.kernels.cuda;

/** A kernel built once per storage type (common.cuh): {@code name} over fp32, {@code name_bf16} over bf16. */
record Twin(Kernel fp32, Kernel bf16) {

    static Twin load(KernelModule kernels, KernelSignature signature, String name) {
        return new Twin(kernels.kernel(signature, name), kernels.kernel(signature, name + "_bf16"));
    }

    /** The build for this tensor's storage type. */
    Kernel of(CudaTensor storage) {
        return storage.bf16() ? bf16 : fp32;
    }
}

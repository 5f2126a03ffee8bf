package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.MemorySegment;

/** One function of the module, looked up once, with the signature it was declared with. */
final class Kernel {

    final String name;
    final KernelSignature signature;
    final MemorySegment function;
    private final KernelModule module;

    Kernel(KernelModule module, String name, KernelSignature signature, MemorySegment function) {
        this.module = module;
        this.name = name;
        this.signature = signature;
        this.function = function;
    }

    /** The arguments of one launch, to be given in the signature's order. */
    KernelArgs args() {
        return module.args(this);
    }

    @Override
    public String toString() {
        return name;
    }
}

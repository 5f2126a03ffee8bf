package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.Tensor;

import java.util.Objects;

/**
 * A run of fp32 values in device memory: the CUDA backend's tensor. {@code address} is a
 * CUdeviceptr; slices share their root's {@link Allocation}, which frees the memory once no
 * tensor refers to it any more.
 */
public record CudaTensor(long address, long length, Allocation allocation) implements Tensor {

    /** Reachability token of one cuMemAlloc; the backend frees the memory after it is collected. */
    static final class Allocation {
        final CudaBackend owner;

        Allocation(CudaBackend owner) {
            this.owner = owner;
        }
    }

    @Override
    public CudaTensor slice(long offset, long length) {
        Objects.checkFromIndexSize(offset, length, this.length);
        return new CudaTensor(address + offset * Float.BYTES, length, allocation);
    }

    long bytes() {
        return length * Float.BYTES;
    }

    @Override
    public String toString() {
        return "CudaTensor[" + length + " floats at 0x" + Long.toHexString(address) + "]";
    }
}

package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.Tensor;

import java.util.Objects;

/**
 * A run of values in device memory: the CUDA backend's tensor. {@code address} is a
 * CUdeviceptr; values are fp32, or bf16 for activations the backend keeps in reduced precision
 * ({@link CudaBackend#allocateActivation}). Slices share their root's {@link Allocation}, which
 * frees the memory once no tensor refers to it any more.
 */
public record CudaTensor(long address, long length, boolean bf16, Allocation allocation) implements Tensor {

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
        return new CudaTensor(address + offset * elementBytes(), length, bf16, allocation);
    }

    int elementBytes() {
        return bf16 ? 2 : Float.BYTES;
    }

    long bytes() {
        return length * elementBytes();
    }

    @Override
    public String toString() {
        return "CudaTensor[" + length + (bf16 ? " bf16" : " floats") + " at 0x" + Long.toHexString(address) + "]";
    }
}

package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.Tensor;

import java.util.Objects;

/**
 * A run of values in device memory: the CUDA backend's tensor. {@code address} is a
 * CUdeviceptr; values are fp32, or bf16 for activations the backend keeps in reduced precision
 * ({@link CudaBackend#allocateActivation}). Slices share their root's {@link Allocation}: a range
 * of the backend's {@link DeviceArena}, which the backend frees when it closes (or when the root
 * is released), never the garbage collector.
 */
public record CudaTensor(long address, long length, boolean bf16, Allocation allocation) implements Tensor {

    /** One range of the arena: its owner, the root tensor's address and length, its bytes, and whether it was given back. */
    static final class Allocation {
        final CudaMemory owner;
        final long address;
        final long length;
        final long bytes;
        boolean released;

        Allocation(CudaMemory owner, long address, long length, long bytes) {
            this.owner = owner;
            this.address = address;
            this.length = length;
            this.bytes = bytes;
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

package io.tinyllamaj.kernels.cpu;

import io.tinyllamaj.kernels.Tensor;

import java.util.Objects;

/** A range of a Java float array: the CPU backend's tensor. */
public record CpuTensor(float[] data, int offset, int length32) implements Tensor {

    public CpuTensor {
        Objects.checkFromIndexSize(offset, length32, data.length);
    }

    @Override
    public long length() {
        return length32;
    }

    @Override
    public CpuTensor slice(long offset, long length) {
        Objects.checkFromIndexSize(offset, length, length32);
        return new CpuTensor(data, this.offset + (int) offset, (int) length);
    }

    static CpuTensor of(Tensor t) {
        if (t instanceof CpuTensor cpu) {
            return cpu;
        }
        throw new IllegalArgumentException("tensor " + t + " does not belong to the CPU backend");
    }
}

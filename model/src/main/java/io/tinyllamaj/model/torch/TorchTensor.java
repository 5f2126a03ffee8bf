package io.tinyllamaj.model.torch;

import java.util.Arrays;

/** A tensor as {@code torch._utils._rebuild_tensor_v2} describes it: a strided view of a storage. */
public record TorchTensor(TorchStorage storage, long offset, long[] size, long[] stride) {

    public long elements() {
        long n = 1;
        for (long d : size) {
            n *= d;
        }
        return n;
    }

    public String shape() {
        return Arrays.toString(size);
    }
}

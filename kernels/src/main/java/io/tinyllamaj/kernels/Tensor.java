package io.tinyllamaj.kernels;

/**
 * A contiguous run of fp32 values owned by one {@link Backend}. Backends keep their own
 * storage (a Java array, device memory); a tensor only knows its length and how to name a
 * sub-range, so a model can lay out all parameters in one allocation and hand out views.
 */
public interface Tensor {

    long length();

    /** A view of {@code length} values starting at {@code offset}; writes go to this tensor. */
    Tensor slice(long offset, long length);
}

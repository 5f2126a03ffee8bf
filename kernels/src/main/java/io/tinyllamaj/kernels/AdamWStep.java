package io.tinyllamaj.kernels;

/** The hyper-parameters of one AdamW update; {@code step} counts from 1 for bias correction. */
public record AdamWStep(float lr, float beta1, float beta2, float eps, float weightDecay, int step, float gradScale) {
}
